import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from crm_api.companies import service
from crm_api.companies.schemas import (
    CompanyCreate,
    CompanyListParams,
    CompanyPage,
    CompanyRead,
    CompanyUpdate,
    CompanyUpsert,
)
from crm_api.core.auth import Principal, require_scope
from crm_api.core.db import DbSession
from crm_api.core.errors import problem_responses
from crm_api.core.etag import IfMatchHeader, IfNoneMatchHeader, set_etag
from crm_api.core.filters import SearchParams
from crm_api.core.idempotency import IdempotencyKey
from crm_api.core.openapi import links
from crm_api.core.pagination import set_link_header
from crm_api.core.responses import (
    ETAG_HEADER,
    LINK_HEADER,
    LOCATION_HEADER,
    created,
    not_modified,
    upserted,
)
from crm_api.core.routing import domain_router
from crm_api.core.schemas import ExternalId
from crm_api.core.scopes import Scope

router = domain_router("companies")

Reader = Annotated[Principal, Depends(require_scope(Scope.companies_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.companies_write))]
COMPANY_LINKS = links(
    "company_id",
    "companies_get",
    "companies_update",
    "companies_delete",
    "companies_contacts_list",
)
# An upsert's response also leads to the record by the external id in its path. (A
# created record's external id may change or be absent, so POST does not link by it.)
COMPANY_UPSERT_LINKS = {
    **COMPANY_LINKS,
    **links("external_id", "companies_get_by_external_id", field="external_id"),
}
CompanyId = Annotated[uuid.UUID, Path(description="The company's id.")]
ExternalIdPath = Annotated[ExternalId, Path(description="Your system's id for the company.")]


@router.get(
    "/companies",
    response_model=CompanyPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List companies",
)
async def companies_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[CompanyListParams, Query()],
) -> CompanyPage:
    rows, next_cursor = await service.list_companies(session, principal, params)
    set_link_header(request, response, next_cursor)
    return CompanyPage(data=[CompanyRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/companies/search",
    response_model=CompanyPage,
    summary="Search companies with the filter language",
    description=service.SEARCH_DESCRIPTION,
)
async def companies_search(
    data: SearchParams, session: DbSession, principal: Reader
) -> CompanyPage:
    rows, next_cursor = await service.search_companies(session, principal, data)
    return CompanyPage(data=[CompanyRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/companies",
    status_code=201,
    response_model=CompanyRead,
    responses={
        201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": COMPANY_LINKS},
        **problem_responses(409),
    },
    summary="Create a company",
)
async def companies_create(
    request: Request,
    response: Response,
    data: CompanyCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> CompanyRead:
    company = await service.create_company(session, principal, data)
    created(response, company.version, str(request.url_for("companies_get", company_id=company.id)))
    return CompanyRead.model_validate(company)


@router.get(
    "/companies/external/{external_id}",
    response_model=CompanyRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404)},
    summary="Get a company by external id",
)
async def companies_get_by_external_id(
    external_id: ExternalIdPath, response: Response, session: DbSession, principal: Reader
) -> CompanyRead:
    company = await service.get_company_by_external_id(session, principal, external_id)
    set_etag(response, company.version)
    return CompanyRead.model_validate(company)


@router.put(
    "/companies/external/{external_id}",
    response_model=CompanyRead,
    responses={
        200: {"description": "Updated", "headers": ETAG_HEADER, "links": COMPANY_UPSERT_LINKS},
        201: {
            "description": "Created",
            "headers": {**LOCATION_HEADER, **ETAG_HEADER},
            "links": COMPANY_UPSERT_LINKS,
        },
        **problem_responses(409),
    },
    summary="Create or update a company by external id",
)
async def companies_upsert(
    request: Request,
    response: Response,
    external_id: ExternalIdPath,
    data: CompanyUpsert,
    session: DbSession,
    principal: Writer,
) -> CompanyRead:
    company, was_created = await service.upsert_company(session, principal, external_id, data)
    location = str(request.url_for("companies_get", company_id=company.id))
    upserted(response, company.version, location if was_created else None)
    return CompanyRead.model_validate(company)


@router.get(
    "/companies/{company_id}",
    response_model=CompanyRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified"},
        **problem_responses(404),
    },
    summary="Get a company",
)
async def companies_get(
    company_id: CompanyId,
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> CompanyRead | Response:
    company = await service.get_company(session, principal, company_id)
    if (unchanged := not_modified(if_none_match, company.version)) is not None:
        return unchanged
    set_etag(response, company.version)
    return CompanyRead.model_validate(company)


@router.patch(
    "/companies/{company_id}",
    response_model=CompanyRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412)},
    summary="Update a company",
)
async def companies_update(
    company_id: CompanyId,
    data: CompanyUpdate,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> CompanyRead:
    company = await service.update_company(session, principal, company_id, data, if_match)
    set_etag(response, company.version)
    return CompanyRead.model_validate(company)


@router.delete(
    "/companies/{company_id}",
    status_code=204,
    responses=problem_responses(404, 412),
    summary="Delete a company; its contacts stay, unlinked",
)
async def companies_delete(
    company_id: CompanyId, session: DbSession, principal: Writer, if_match: IfMatchHeader = None
) -> Response:
    await service.delete_company(session, principal, company_id, if_match)
    return Response(status_code=204)
