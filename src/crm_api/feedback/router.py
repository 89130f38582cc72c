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
from crm_api.feedback import service
from crm_api.feedback.schemas import (
    FeedbackBatchUpsert,
    FeedbackCreate,
    FeedbackListParams,
    FeedbackPage,
    FeedbackRead,
    FeedbackUpdate,
    FeedbackUpsert,
)

router = domain_router("feedback")

Reader = Annotated[Principal, Depends(require_scope(Scope.feedback_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.feedback_write))]
INTERACTION_LINKS = links("feedback_id", "feedback_get", "feedback_update", "feedback_delete")
# An upsert's response also leads to the record by the external id in its path. (A
# created record's external id may change or be absent, so POST does not link by it.)
INTERACTION_UPSERT_LINKS = {
    **INTERACTION_LINKS,
    **links("external_id", "feedback_get_by_external_id", field="external_id"),
}
FeedbackId = Annotated[uuid.UUID, Path(description="The response's id.")]
ExternalIdPath = Annotated[ExternalId, Path(description="Your system's id for it.")]


@router.get(
    "/feedback",
    response_model=FeedbackPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List survey responses, newest first",
)
async def feedback_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[FeedbackListParams, Query()],
) -> FeedbackPage:
    rows, next_cursor = await service.list_feedback(session, principal, params)
    set_link_header(request, response, next_cursor)
    return FeedbackPage(
        data=[FeedbackRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post(
    "/feedback",
    status_code=201,
    response_model=FeedbackRead,
    responses={
        201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": INTERACTION_LINKS},
        **problem_responses(409),
    },
    summary="Record a survey response (NPS or CSAT)",
)
async def feedback_create(
    request: Request,
    response: Response,
    data: FeedbackCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> FeedbackRead:
    feedback = await service.create_feedback(session, principal, data)
    location = str(request.url_for("feedback_get", feedback_id=feedback.id))
    created(response, feedback.version, location)
    return FeedbackRead.model_validate(feedback)


@router.post(
    "/feedback/batch/upsert",
    response_model=BatchUpsertResult,
    summary="Create or update up to 1,000 survey responses by external id",
)
async def feedback_batch_upsert(
    data: FeedbackBatchUpsert,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> BatchUpsertResult:
    results = await service.batch_upsert_feedback(session, principal, data.items)
    return BatchUpsertResult(results=results)


@router.get(
    "/feedback/external/{external_id}",
    response_model=FeedbackRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404)},
    summary="Get a survey response by external id",
)
async def feedback_get_by_external_id(
    external_id: ExternalIdPath, response: Response, session: DbSession, principal: Reader
) -> FeedbackRead:
    feedback = await service.get_feedback_by_external_id(session, principal, external_id)
    set_etag(response, feedback.version)
    return FeedbackRead.model_validate(feedback)


@router.put(
    "/feedback/external/{external_id}",
    response_model=FeedbackRead,
    responses={
        200: {"description": "Updated", "headers": ETAG_HEADER, "links": INTERACTION_UPSERT_LINKS},
        201: {
            "description": "Created",
            "headers": {**LOCATION_HEADER, **ETAG_HEADER},
            "links": INTERACTION_UPSERT_LINKS,
        },
        **problem_responses(409),
    },
    summary="Create or update a survey response by external id",
)
async def feedback_upsert(
    request: Request,
    response: Response,
    external_id: ExternalIdPath,
    data: FeedbackUpsert,
    session: DbSession,
    principal: Writer,
) -> FeedbackRead:
    feedback, was_created, _ = await service.upsert_feedback(session, principal, external_id, data)
    location = str(request.url_for("feedback_get", feedback_id=feedback.id))
    upserted(response, feedback.version, location if was_created else None)
    return FeedbackRead.model_validate(feedback)


@router.get(
    "/feedback/{feedback_id}",
    response_model=FeedbackRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified"},
        **problem_responses(404),
    },
    summary="Get a survey response",
)
async def feedback_get(
    feedback_id: FeedbackId,
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> FeedbackRead | Response:
    feedback = await service.get_feedback(session, principal, feedback_id)
    if (unchanged := not_modified(if_none_match, feedback.version)) is not None:
        return unchanged
    set_etag(response, feedback.version)
    return FeedbackRead.model_validate(feedback)


@router.patch(
    "/feedback/{feedback_id}",
    response_model=FeedbackRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412)},
    summary="Update a survey response",
)
async def feedback_update(
    feedback_id: FeedbackId,
    data: FeedbackUpdate,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> FeedbackRead:
    feedback = await service.update_feedback(session, principal, feedback_id, data, if_match)
    set_etag(response, feedback.version)
    return FeedbackRead.model_validate(feedback)


@router.delete(
    "/feedback/{feedback_id}",
    status_code=204,
    responses=problem_responses(404, 412),
    summary="Delete a survey response (a ticket shows the CSAT before it again)",
)
async def feedback_delete(
    feedback_id: FeedbackId,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> Response:
    await service.delete_feedback(session, principal, feedback_id, if_match)
    return Response(status_code=204)
