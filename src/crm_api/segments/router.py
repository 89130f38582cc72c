import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from crm_api.contacts.schemas import ContactPage, ContactRead
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
from crm_api.segments import service
from crm_api.segments.schemas import (
    SegmentCreate,
    SegmentListParams,
    SegmentMemberListParams,
    SegmentMembersChange,
    SegmentMembersResult,
    SegmentPage,
    SegmentPreview,
    SegmentPreviewResult,
    SegmentRead,
    SegmentUpdate,
)

router = domain_router("segments")

Reader = Annotated[Principal, Depends(require_scope(Scope.segments_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.segments_write))]
SEGMENT_LINKS = links("segment_id", "segments_get", "segments_update", "segments_delete")
SegmentId = Annotated[uuid.UUID, Path(description="The segment's id.")]
ContactId = Annotated[uuid.UUID, Path(description="The contact's id.")]


@router.get(
    "/segments",
    response_model=SegmentPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List segments",
)
async def segments_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[SegmentListParams, Query()],
) -> SegmentPage:
    rows, next_cursor = await service.list_segments(session, principal, params)
    set_link_header(request, response, next_cursor)
    return SegmentPage(data=[SegmentRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/segments",
    status_code=201,
    response_model=SegmentRead,
    responses={
        201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": SEGMENT_LINKS},
        **problem_responses(409),
    },
    summary="Create a segment",
    description="A dynamic segment is evaluated at once over every contact; from then on a "
    "contact joins or leaves within seconds of a change to it, its company, orders, feedback or "
    "tickets (the worker does this, announcing `segment.member_added` and "
    "`segment.member_removed`), and every dynamic segment is evaluated whole again each hour. "
    "The members a segment starts with are not announced one by one.",
)
async def segments_create(
    request: Request,
    response: Response,
    data: SegmentCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> SegmentRead:
    segment = await service.create_segment(session, principal, data)
    created(response, segment.version, str(request.url_for("segments_get", segment_id=segment.id)))
    return SegmentRead.model_validate(segment)


@router.post(
    "/segments/preview",
    response_model=SegmentPreviewResult,
    summary="Count and list the contacts an unsaved filter selects",
)
async def segments_preview(
    data: SegmentPreview, session: DbSession, principal: Reader
) -> SegmentPreviewResult:
    count, contacts = await service.preview_segment(session, principal, data)
    return SegmentPreviewResult(count=count, data=[ContactRead.model_validate(c) for c in contacts])


@router.get(
    "/segments/{segment_id}",
    response_model=SegmentRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified"},
        **problem_responses(404),
    },
    summary="Get a segment with its member count",
)
async def segments_get(
    segment_id: SegmentId,
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> SegmentRead | Response:
    segment = await service.get_segment(session, principal, segment_id)
    if (unchanged := not_modified(if_none_match, segment.version)) is not None:
        return unchanged
    set_etag(response, segment.version)
    return SegmentRead.model_validate(segment)


@router.patch(
    "/segments/{segment_id}",
    response_model=SegmentRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 412)},
    summary="Update a segment",
)
async def segments_update(
    segment_id: SegmentId,
    data: SegmentUpdate,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> SegmentRead:
    segment = await service.update_segment(session, principal, segment_id, data, if_match)
    set_etag(response, segment.version)
    return SegmentRead.model_validate(segment)


@router.delete(
    "/segments/{segment_id}",
    status_code=204,
    responses=problem_responses(404, 412),
    summary="Delete a segment",
)
async def segments_delete(
    segment_id: SegmentId,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> Response:
    await service.delete_segment(session, principal, segment_id, if_match)
    return Response(status_code=204)


@router.post(
    "/segments/{segment_id}/refresh",
    response_model=SegmentRead,
    responses=problem_responses(404, 409),
    summary="Evaluate a dynamic segment over every contact now",
)
async def segments_refresh(
    segment_id: SegmentId, session: DbSession, principal: Writer
) -> SegmentRead:
    return SegmentRead.model_validate(await service.refresh_segment(session, principal, segment_id))


@router.get(
    "/segments/{segment_id}/members",
    response_model=ContactPage,
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
    summary="List a segment's members",
)
async def segments_members_list(
    segment_id: SegmentId,
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[SegmentMemberListParams, Query()],
) -> ContactPage:
    rows, next_cursor = await service.list_members(session, principal, segment_id, params)
    set_link_header(request, response, next_cursor)
    return ContactPage(data=[ContactRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/segments/{segment_id}/members",
    response_model=SegmentMembersResult,
    responses=problem_responses(404, 409),
    summary="Add contacts to a static segment",
)
async def segments_members_add(
    segment_id: SegmentId,
    data: SegmentMembersChange,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> SegmentMembersResult:
    segment, changed = await service.change_members(session, principal, segment_id, data, add=True)
    return SegmentMembersResult(changed=changed, member_count=segment.member_count)


@router.post(
    "/segments/{segment_id}/members/remove",
    response_model=SegmentMembersResult,
    responses=problem_responses(404, 409),
    summary="Take contacts out of a static segment",
)
async def segments_members_remove(
    segment_id: SegmentId,
    data: SegmentMembersChange,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> SegmentMembersResult:
    segment, changed = await service.change_members(session, principal, segment_id, data, add=False)
    return SegmentMembersResult(changed=changed, member_count=segment.member_count)


@router.get(
    "/contacts/{contact_id}/segments",
    response_model=SegmentPage,
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
    summary="List the segments a contact is in",
)
async def segments_of_contact(
    contact_id: ContactId,
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[SegmentMemberListParams, Query()],
) -> SegmentPage:
    rows, next_cursor = await service.segments_of_contact(session, principal, contact_id, params)
    set_link_header(request, response, next_cursor)
    return SegmentPage(data=[SegmentRead.model_validate(r) for r in rows], next_cursor=next_cursor)
