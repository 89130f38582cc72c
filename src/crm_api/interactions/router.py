import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from crm_api.core.auth import Principal, require_scope
from crm_api.core.batch import BatchUpsertResult
from crm_api.core.db import DbSession
from crm_api.core.errors import problem_responses
from crm_api.core.etag import IfMatchHeader, IfNoneMatchHeader, set_etag
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
from crm_api.interactions import service
from crm_api.interactions.schemas import (
    InteractionBatchUpsert,
    InteractionCreate,
    InteractionListParams,
    InteractionPage,
    InteractionRead,
    InteractionUpdate,
    InteractionUpsert,
)

router = domain_router("interactions")

Reader = Annotated[Principal, Depends(require_scope(Scope.interactions_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.interactions_write))]
INTERACTION_LINKS = links(
    "interaction_id", "interactions_get", "interactions_update", "interactions_delete"
)
# An upsert's response also leads to the record by the external id in its path. (A
# created record's external id may change or be absent, so POST does not link by it.)
INTERACTION_UPSERT_LINKS = {
    **INTERACTION_LINKS,
    **links("external_id", "interactions_get_by_external_id", field="external_id"),
}
InteractionId = Annotated[uuid.UUID, Path(description="The interaction's id.")]
ExternalIdPath = Annotated[ExternalId, Path(description="Your system's id for it.")]


@router.get(
    "/interactions",
    response_model=InteractionPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List interactions, newest first",
)
async def interactions_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[InteractionListParams, Query()],
) -> InteractionPage:
    rows, next_cursor = await service.list_interactions(session, principal, params)
    set_link_header(request, response, next_cursor)
    return InteractionPage(
        data=[InteractionRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post(
    "/interactions",
    status_code=201,
    response_model=InteractionRead,
    responses={
        201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": INTERACTION_LINKS},
        **problem_responses(409),
    },
    summary="Record an interaction",
)
async def interactions_create(
    request: Request,
    response: Response,
    data: InteractionCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> InteractionRead:
    interaction = await service.create_interaction(session, principal, data)
    location = str(request.url_for("interactions_get", interaction_id=interaction.id))
    created(response, interaction.version, location)
    return InteractionRead.model_validate(interaction)


@router.post(
    "/interactions/batch/upsert",
    response_model=BatchUpsertResult,
    summary="Create or update up to 1,000 interactions by external id",
)
async def interactions_batch_upsert(
    data: InteractionBatchUpsert,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> BatchUpsertResult:
    results = await service.batch_upsert_interactions(session, principal, data.items)
    return BatchUpsertResult(results=results)


@router.get(
    "/interactions/external/{external_id}",
    response_model=InteractionRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404)},
    summary="Get an interaction by external id",
)
async def interactions_get_by_external_id(
    external_id: ExternalIdPath, response: Response, session: DbSession, principal: Reader
) -> InteractionRead:
    interaction = await service.get_interaction_by_external_id(session, principal, external_id)
    set_etag(response, interaction.version)
    return InteractionRead.model_validate(interaction)


@router.put(
    "/interactions/external/{external_id}",
    response_model=InteractionRead,
    responses={
        200: {"description": "Updated", "headers": ETAG_HEADER, "links": INTERACTION_UPSERT_LINKS},
        201: {
            "description": "Created",
            "headers": {**LOCATION_HEADER, **ETAG_HEADER},
            "links": INTERACTION_UPSERT_LINKS,
        },
        **problem_responses(409),
    },
    summary="Create or update an interaction by external id",
)
async def interactions_upsert(
    request: Request,
    response: Response,
    external_id: ExternalIdPath,
    data: InteractionUpsert,
    session: DbSession,
    principal: Writer,
) -> InteractionRead:
    interaction, was_created, _ = await service.upsert_interaction(
        session, principal, external_id, data
    )
    location = str(request.url_for("interactions_get", interaction_id=interaction.id))
    upserted(response, interaction.version, location if was_created else None)
    return InteractionRead.model_validate(interaction)


@router.get(
    "/interactions/{interaction_id}",
    response_model=InteractionRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified"},
        **problem_responses(404),
    },
    summary="Get an interaction",
)
async def interactions_get(
    interaction_id: InteractionId,
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> InteractionRead | Response:
    interaction = await service.get_interaction(session, principal, interaction_id)
    if (unchanged := not_modified(if_none_match, interaction.version)) is not None:
        return unchanged
    set_etag(response, interaction.version)
    return InteractionRead.model_validate(interaction)


@router.patch(
    "/interactions/{interaction_id}",
    response_model=InteractionRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412)},
    summary="Update an interaction",
)
async def interactions_update(
    interaction_id: InteractionId,
    data: InteractionUpdate,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> InteractionRead:
    interaction = await service.update_interaction(
        session, principal, interaction_id, data, if_match
    )
    set_etag(response, interaction.version)
    return InteractionRead.model_validate(interaction)


@router.delete(
    "/interactions/{interaction_id}",
    status_code=204,
    responses=problem_responses(404, 412),
    summary="Delete an interaction",
)
async def interactions_delete(
    interaction_id: InteractionId,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> Response:
    await service.delete_interaction(session, principal, interaction_id, if_match)
    return Response(status_code=204)
