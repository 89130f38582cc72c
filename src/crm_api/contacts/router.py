import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from crm_api.contacts import service
from crm_api.contacts.schemas import (
    CompanyContactListParams,
    ContactBatchUpsert,
    ContactCreate,
    ContactListParams,
    ContactMerge,
    ContactMergeResult,
    ContactPage,
    ContactRead,
    ContactUpdate,
    ContactUpsert,
    DuplicateListParams,
    DuplicatePage,
)
from crm_api.core.auth import Principal, require_scope
from crm_api.core.batch import BatchUpsertResult
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

router = domain_router("contacts")

Reader = Annotated[Principal, Depends(require_scope(Scope.contacts_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.contacts_write))]
CONTACT_LINKS = links("contact_id", "contacts_get", "contacts_update", "contacts_delete")
# An upsert's response also leads to the record by the external id in its path. (A
# created record's external id may change or be absent, so POST does not link by it.)
CONTACT_UPSERT_LINKS = {
    **CONTACT_LINKS,
    **links("external_id", "contacts_get_by_external_id", field="external_id"),
}
ContactId = Annotated[uuid.UUID, Path(description="The contact's id.")]
ExternalIdPath = Annotated[ExternalId, Path(description="Your system's id for the contact.")]


@router.get(
    "/contacts",
    response_model=ContactPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List contacts",
)
async def contacts_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[ContactListParams, Query()],
) -> ContactPage:
    rows, next_cursor = await service.list_contacts(session, principal, params)
    set_link_header(request, response, next_cursor)
    return ContactPage(data=[ContactRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/contacts/search",
    response_model=ContactPage,
    summary="Search contacts with the filter language",
    description=service.SEARCH_DESCRIPTION,
)
async def contacts_search(data: SearchParams, session: DbSession, principal: Reader) -> ContactPage:
    rows, next_cursor = await service.search_contacts(session, principal, data)
    return ContactPage(data=[ContactRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/contacts",
    status_code=201,
    response_model=ContactRead,
    responses={
        201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": CONTACT_LINKS},
        **problem_responses(409),
    },
    summary="Create a contact",
)
async def contacts_create(
    request: Request,
    response: Response,
    data: ContactCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> ContactRead:
    contact = await service.create_contact(session, principal, data)
    created(response, contact.version, str(request.url_for("contacts_get", contact_id=contact.id)))
    return ContactRead.model_validate(contact)


@router.post(
    "/contacts/batch/upsert",
    response_model=BatchUpsertResult,
    summary="Create or update up to 1,000 contacts by external id",
)
async def contacts_batch_upsert(
    data: ContactBatchUpsert,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> BatchUpsertResult:
    results = await service.batch_upsert_contacts(session, principal, data.items)
    return BatchUpsertResult(results=results)


@router.get(
    "/contacts/external/{external_id}",
    response_model=ContactRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404)},
    summary="Get a contact by external id",
)
async def contacts_get_by_external_id(
    external_id: ExternalIdPath, response: Response, session: DbSession, principal: Reader
) -> ContactRead:
    contact = await service.get_contact_by_external_id(session, principal, external_id)
    set_etag(response, contact.version)
    return ContactRead.model_validate(contact)


@router.put(
    "/contacts/external/{external_id}",
    response_model=ContactRead,
    responses={
        200: {"description": "Updated", "headers": ETAG_HEADER, "links": CONTACT_UPSERT_LINKS},
        201: {
            "description": "Created",
            "headers": {**LOCATION_HEADER, **ETAG_HEADER},
            "links": CONTACT_UPSERT_LINKS,
        },
        **problem_responses(409),
    },
    summary="Create or update a contact by external id",
)
async def contacts_upsert(
    request: Request,
    response: Response,
    external_id: ExternalIdPath,
    data: ContactUpsert,
    session: DbSession,
    principal: Writer,
) -> ContactRead:
    contact, was_created = await service.upsert_contact(session, principal, external_id, data)
    location = str(request.url_for("contacts_get", contact_id=contact.id))
    upserted(response, contact.version, location if was_created else None)
    return ContactRead.model_validate(contact)


@router.get(
    "/contacts/duplicates",
    response_model=DuplicatePage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List likely duplicate contacts, in groups",
)
async def contacts_duplicates(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[DuplicateListParams, Query()],
) -> DuplicatePage:
    groups, next_cursor = await service.list_duplicates(session, principal, params)
    set_link_header(request, response, next_cursor)
    return DuplicatePage(data=groups, next_cursor=next_cursor)


@router.post(
    "/contacts/{contact_id}/merge",
    response_model=ContactMergeResult,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412, 428)},
    summary="Merge other contacts into this one",
    description="Needs `If-Match` with this contact's ETag (428 without). Every interaction, "
    "ticket, ticket comment, deal, order and survey response of the merged contacts becomes "
    "this one's; they are kept as tombstones, whose id answers GET with a 301 to this one. "
    "Events: `contact.updated` (this one), `contact.deleted` (each merged one, with "
    "`merged_into_id`) and `contact.merged`. The moved records keep their ids and get a new "
    "version; no event is sent for each of them: `contact.merged` names what moved.",
)
async def contacts_merge(
    contact_id: ContactId,
    data: ContactMerge,
    response: Response,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
    if_match: IfMatchHeader = None,
) -> ContactMergeResult:
    result = await service.merge_contacts(session, principal, contact_id, data, if_match)
    if not result.dry_run:
        set_etag(response, result.survivor.version)
    return result


@router.get(
    "/contacts/{contact_id}",
    response_model=ContactRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified"},
        **problem_responses(404),
        301: {
            **problem_responses(301)[301],
            "headers": {"Location": {"description": "The survivor", "schema": {"type": "string"}}},
        },
    },
    summary="Get a contact (a merged one: 301 to the contact it was merged into)",
)
async def contacts_get(
    contact_id: ContactId,
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> ContactRead | Response:
    contact = await service.get_contact_or_where_it_went(session, principal, contact_id)
    if (unchanged := not_modified(if_none_match, contact.version)) is not None:
        return unchanged
    set_etag(response, contact.version)
    return ContactRead.model_validate(contact)


@router.patch(
    "/contacts/{contact_id}",
    response_model=ContactRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412)},
    summary="Update a contact",
)
async def contacts_update(
    contact_id: ContactId,
    data: ContactUpdate,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> ContactRead:
    contact = await service.update_contact(session, principal, contact_id, data, if_match)
    set_etag(response, contact.version)
    return ContactRead.model_validate(contact)


@router.delete(
    "/contacts/{contact_id}",
    status_code=204,
    responses=problem_responses(404, 412),
    summary="Delete a contact",
)
async def contacts_delete(
    contact_id: ContactId, session: DbSession, principal: Writer, if_match: IfMatchHeader = None
) -> Response:
    await service.delete_contact(session, principal, contact_id, if_match)
    return Response(status_code=204)


@router.get(
    "/companies/{company_id}/contacts",
    response_model=ContactPage,
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
    summary="List a company's contacts",
)
async def companies_contacts_list(
    company_id: Annotated[uuid.UUID, Path(description="The company's id.")],
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[CompanyContactListParams, Query()],
) -> ContactPage:
    rows, next_cursor = await service.list_company_contacts(session, principal, company_id, params)
    set_link_header(request, response, next_cursor)
    return ContactPage(data=[ContactRead.model_validate(r) for r in rows], next_cursor=next_cursor)
