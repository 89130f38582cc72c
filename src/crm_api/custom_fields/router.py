import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from crm_api.core.auth import Principal, require_scope
from crm_api.core.db import DbSession
from crm_api.core.errors import problem_responses
from crm_api.core.etag import IfMatchHeader, IfNoneMatchHeader, set_etag
from crm_api.core.idempotency import IdempotencyKey
from crm_api.core.openapi import links
from crm_api.core.pagination import set_link_header
from crm_api.core.responses import ETAG_HEADER, LINK_HEADER, LOCATION_HEADER, created, not_modified
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.custom_fields import service
from crm_api.custom_fields.schemas import (
    CustomFieldCreate,
    CustomFieldListParams,
    CustomFieldPage,
    CustomFieldRead,
    CustomFieldUpdate,
)

router = domain_router("custom-fields")

Reader = Annotated[Principal, Depends(require_scope(Scope.custom_fields_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.custom_fields_write))]
CUSTOM_FIELD_LINKS = links(
    "custom_field_id", "custom_fields_get", "custom_fields_update", "custom_fields_delete"
)
CustomFieldId = Annotated[uuid.UUID, Path(description="The custom field's id.")]


@router.get(
    "/custom-fields",
    response_model=CustomFieldPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List custom field definitions",
)
async def custom_fields_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[CustomFieldListParams, Query()],
) -> CustomFieldPage:
    rows, next_cursor = await service.list_custom_fields(session, principal, params)
    set_link_header(request, response, next_cursor)
    return CustomFieldPage(
        data=[CustomFieldRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post(
    "/custom-fields",
    status_code=201,
    response_model=CustomFieldRead,
    responses={
        201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": CUSTOM_FIELD_LINKS},
        **problem_responses(409),
    },
    summary="Define a custom field",
    description="Writes of the resource's `custom_fields` are checked against its definitions: "
    "a key that is not defined, or a value that does not fit the type, is a 422 naming the key. "
    "Values stored before must fit the new definition (409 otherwise).",
)
async def custom_fields_create(
    request: Request,
    response: Response,
    data: CustomFieldCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> CustomFieldRead:
    definition = await service.create_custom_field(session, principal, data)
    location = str(request.url_for("custom_fields_get", custom_field_id=definition.id))
    created(response, definition.version, location)
    return CustomFieldRead.model_validate(definition)


@router.get(
    "/custom-fields/{custom_field_id}",
    response_model=CustomFieldRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified"},
        **problem_responses(404),
    },
    summary="Get a custom field definition",
)
async def custom_fields_get(
    custom_field_id: CustomFieldId,
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> CustomFieldRead | Response:
    definition = await service.get_custom_field(session, principal, custom_field_id)
    if (unchanged := not_modified(if_none_match, definition.version)) is not None:
        return unchanged
    set_etag(response, definition.version)
    return CustomFieldRead.model_validate(definition)


@router.patch(
    "/custom-fields/{custom_field_id}",
    response_model=CustomFieldRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412)},
    summary="Update a custom field definition",
)
async def custom_fields_update(
    custom_field_id: CustomFieldId,
    data: CustomFieldUpdate,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> CustomFieldRead:
    definition = await service.update_custom_field(
        session, principal, custom_field_id, data, if_match
    )
    set_etag(response, definition.version)
    return CustomFieldRead.model_validate(definition)


@router.delete(
    "/custom-fields/{custom_field_id}",
    status_code=204,
    responses=problem_responses(404, 412),
    summary="Delete a custom field definition (records keep their values)",
)
async def custom_fields_delete(
    custom_field_id: CustomFieldId,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> Response:
    await service.delete_custom_field(session, principal, custom_field_id, if_match)
    return Response(status_code=204)
