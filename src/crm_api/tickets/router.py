import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

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
from crm_api.tickets import service
from crm_api.tickets.schemas import (
    CommentCreate,
    CommentListParams,
    CommentPage,
    CommentRead,
    SlaPolicyCreate,
    SlaPolicyListParams,
    SlaPolicyPage,
    SlaPolicyRead,
    SlaPolicyUpdate,
    StatusHistoryParams,
    TicketBatchUpsert,
    TicketCreate,
    TicketListParams,
    TicketPage,
    TicketRead,
    TicketStatusChangePage,
    TicketStatusChangeRead,
    TicketUpdate,
    TicketUpsert,
)

sla_policies_router = domain_router("sla-policies")
router = domain_router("tickets")

PolicyReader = Annotated[Principal, Depends(require_scope(Scope.sla_policies_read))]
PolicyWriter = Annotated[Principal, Depends(require_scope(Scope.sla_policies_write))]
Reader = Annotated[Principal, Depends(require_scope(Scope.tickets_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.tickets_write))]

POLICY_LINKS = links(
    "sla_policy_id", "sla_policies_get", "sla_policies_update", "sla_policies_delete"
)
TICKET_LINKS = links(
    "ticket_id",
    "tickets_get",
    "tickets_update",
    "tickets_delete",
    "tickets_comments_create",
    "tickets_comments_list",
    "tickets_status_history_list",
)
# An upsert's response also leads to the record by the external id in its path. (A
# created record's external id may change or be absent, so POST does not link by it.)
TICKET_UPSERT_LINKS = {
    **TICKET_LINKS,
    **links("external_id", "tickets_get_by_external_id", field="external_id"),
}
COMMENT_LINKS = {
    **links("ticket_id", "tickets_comments_get", field="ticket_id"),
    **links("comment_id", "tickets_comments_get"),
}
PolicyId = Annotated[uuid.UUID, Path(description="The policy's id.")]
TicketId = Annotated[uuid.UUID, Path(description="The ticket's id.")]
CommentId = Annotated[uuid.UUID, Path(description="The comment's id.")]
ExternalIdPath = Annotated[ExternalId, Path(description="Your system's id for the ticket.")]


@sla_policies_router.get(
    "/sla-policies",
    response_model=SlaPolicyPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List SLA policies",
)
async def sla_policies_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: PolicyReader,
    params: Annotated[SlaPolicyListParams, Query()],
) -> SlaPolicyPage:
    rows, next_cursor = await service.list_sla_policies(session, principal, params)
    set_link_header(request, response, next_cursor)
    return SlaPolicyPage(
        data=[SlaPolicyRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@sla_policies_router.post(
    "/sla-policies",
    status_code=201,
    response_model=SlaPolicyRead,
    responses={
        201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": POLICY_LINKS},
        **problem_responses(409),
    },
    summary="Create an SLA policy",
)
async def sla_policies_create(
    request: Request,
    response: Response,
    data: SlaPolicyCreate,
    session: DbSession,
    principal: PolicyWriter,
    _: Annotated[None, IdempotencyKey],
) -> SlaPolicyRead:
    policy = await service.create_sla_policy(session, principal, data)
    location = str(request.url_for("sla_policies_get", sla_policy_id=policy.id))
    created(response, policy.version, location)
    return SlaPolicyRead.model_validate(policy)


@sla_policies_router.get(
    "/sla-policies/{sla_policy_id}",
    response_model=SlaPolicyRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified"},
        **problem_responses(404),
    },
    summary="Get an SLA policy",
)
async def sla_policies_get(
    sla_policy_id: PolicyId,
    response: Response,
    session: DbSession,
    principal: PolicyReader,
    if_none_match: IfNoneMatchHeader = None,
) -> SlaPolicyRead | Response:
    policy = await service.get_sla_policy(session, principal, sla_policy_id)
    if (unchanged := not_modified(if_none_match, policy.version)) is not None:
        return unchanged
    set_etag(response, policy.version)
    return SlaPolicyRead.model_validate(policy)


@sla_policies_router.patch(
    "/sla-policies/{sla_policy_id}",
    response_model=SlaPolicyRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412)},
    summary="Update an SLA policy",
)
async def sla_policies_update(
    sla_policy_id: PolicyId,
    data: SlaPolicyUpdate,
    response: Response,
    session: DbSession,
    principal: PolicyWriter,
    if_match: IfMatchHeader = None,
) -> SlaPolicyRead:
    policy = await service.update_sla_policy(session, principal, sla_policy_id, data, if_match)
    set_etag(response, policy.version)
    return SlaPolicyRead.model_validate(policy)


@sla_policies_router.delete(
    "/sla-policies/{sla_policy_id}",
    status_code=204,
    responses=problem_responses(404, 412),
    summary="Delete an SLA policy (its tickets keep their due times)",
)
async def sla_policies_delete(
    sla_policy_id: PolicyId,
    session: DbSession,
    principal: PolicyWriter,
    if_match: IfMatchHeader = None,
) -> Response:
    await service.delete_sla_policy(session, principal, sla_policy_id, if_match)
    return Response(status_code=204)


@router.get(
    "/tickets",
    response_model=TicketPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List tickets",
)
async def tickets_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[TicketListParams, Query()],
) -> TicketPage:
    rows, next_cursor = await service.list_tickets(session, principal, params)
    set_link_header(request, response, next_cursor)
    return TicketPage(data=rows, next_cursor=next_cursor)


@router.post(
    "/tickets/search",
    response_model=TicketPage,
    summary="Search tickets with the filter language",
    description=service.SEARCH_DESCRIPTION,
)
async def tickets_search(data: SearchParams, session: DbSession, principal: Reader) -> TicketPage:
    rows, next_cursor = await service.search_tickets(session, principal, data)
    return TicketPage(data=rows, next_cursor=next_cursor)


@router.post(
    "/tickets",
    status_code=201,
    response_model=TicketRead,
    responses={
        201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": TICKET_LINKS},
        **problem_responses(409),
    },
    summary="Open a ticket",
)
async def tickets_create(
    request: Request,
    response: Response,
    data: TicketCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> TicketRead:
    ticket = await service.create_ticket(session, principal, data)
    created(response, ticket.version, str(request.url_for("tickets_get", ticket_id=ticket.id)))
    return ticket


@router.post(
    "/tickets/batch/upsert",
    response_model=BatchUpsertResult,
    summary="Create or update up to 1,000 tickets by external id",
)
async def tickets_batch_upsert(
    data: TicketBatchUpsert,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> BatchUpsertResult:
    results = await service.batch_upsert_tickets(session, principal, data.items)
    return BatchUpsertResult(results=results)


@router.get(
    "/tickets/external/{external_id}",
    response_model=TicketRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404)},
    summary="Get a ticket by external id",
)
async def tickets_get_by_external_id(
    external_id: ExternalIdPath, response: Response, session: DbSession, principal: Reader
) -> TicketRead:
    ticket = await service.get_ticket_by_external_id(session, principal, external_id)
    set_etag(response, ticket.version)
    return ticket


@router.put(
    "/tickets/external/{external_id}",
    response_model=TicketRead,
    responses={
        200: {"description": "Updated", "headers": ETAG_HEADER, "links": TICKET_UPSERT_LINKS},
        201: {
            "description": "Created",
            "headers": {**LOCATION_HEADER, **ETAG_HEADER},
            "links": TICKET_UPSERT_LINKS,
        },
        **problem_responses(409),
    },
    summary="Create or update a ticket by external id",
)
async def tickets_upsert(
    request: Request,
    response: Response,
    external_id: ExternalIdPath,
    data: TicketUpsert,
    session: DbSession,
    principal: Writer,
) -> TicketRead:
    ticket, was_created, _ = await service.upsert_ticket(session, principal, external_id, data)
    location = str(request.url_for("tickets_get", ticket_id=ticket.id))
    upserted(response, ticket.version, location if was_created else None)
    return ticket


@router.get(
    "/tickets/{ticket_id}",
    response_model=TicketRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified"},
        **problem_responses(404),
    },
    summary="Get a ticket, with its SLA clocks",
)
async def tickets_get(
    ticket_id: TicketId,
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> TicketRead | Response:
    ticket = await service.get_ticket(session, principal, ticket_id)
    if (unchanged := not_modified(if_none_match, ticket.version)) is not None:
        return unchanged
    set_etag(response, ticket.version)
    return ticket


@router.patch(
    "/tickets/{ticket_id}",
    response_model=TicketRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412)},
    summary="Update a ticket, or change its status",
)
async def tickets_update(
    ticket_id: TicketId,
    data: TicketUpdate,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> TicketRead:
    ticket = await service.update_ticket(session, principal, ticket_id, data, if_match)
    set_etag(response, ticket.version)
    return ticket


@router.delete(
    "/tickets/{ticket_id}",
    status_code=204,
    responses=problem_responses(404, 412),
    summary="Delete a ticket",
)
async def tickets_delete(
    ticket_id: TicketId, session: DbSession, principal: Writer, if_match: IfMatchHeader = None
) -> Response:
    await service.delete_ticket(session, principal, ticket_id, if_match)
    return Response(status_code=204)


@router.get(
    "/tickets/{ticket_id}/status-history",
    response_model=TicketStatusChangePage,
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
    summary="Every status a ticket has had, oldest first (sort=-changed_at: newest)",
)
async def tickets_status_history_list(
    ticket_id: TicketId,
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[StatusHistoryParams, Query()],
) -> TicketStatusChangePage:
    rows, next_cursor = await service.list_status_history(session, principal, ticket_id, params)
    set_link_header(request, response, next_cursor)
    return TicketStatusChangePage(
        data=[TicketStatusChangeRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post(
    "/tickets/{ticket_id}/comments",
    status_code=201,
    response_model=CommentRead,
    responses={
        201: {"headers": LOCATION_HEADER, "links": COMMENT_LINKS},
        **problem_responses(404, 409),
    },
    summary="Reply to a ticket, or add an internal note",
)
async def tickets_comments_create(
    ticket_id: TicketId,
    request: Request,
    response: Response,
    data: CommentCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> CommentRead:
    comment = await service.create_comment(session, principal, ticket_id, data)
    response.headers["Location"] = str(
        request.url_for("tickets_comments_get", ticket_id=ticket_id, comment_id=comment.id)
    )
    return CommentRead.model_validate(comment)


@router.get(
    "/tickets/{ticket_id}/comments",
    response_model=CommentPage,
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
    summary="List a ticket's replies and notes, oldest first",
)
async def tickets_comments_list(
    ticket_id: TicketId,
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[CommentListParams, Query()],
) -> CommentPage:
    rows, next_cursor = await service.list_comments(session, principal, ticket_id, params)
    set_link_header(request, response, next_cursor)
    return CommentPage(data=[CommentRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/tickets/{ticket_id}/comments/{comment_id}",
    response_model=CommentRead,
    responses=problem_responses(404),
    summary="Get a comment",
)
async def tickets_comments_get(
    ticket_id: TicketId, comment_id: CommentId, session: DbSession, principal: Reader
) -> CommentRead:
    comment = await service.get_comment(session, principal, ticket_id, comment_id)
    return CommentRead.model_validate(comment)
