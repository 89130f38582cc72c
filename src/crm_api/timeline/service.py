import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.companies.repository import CompanyRepository
from crm_api.contacts.repository import ContactRepository
from crm_api.core.auth import Principal
from crm_api.core.errors import Forbidden
from crm_api.core.pagination import make_page, page_request
from crm_api.core.records import get_or_404
from crm_api.core.repository import Repository
from crm_api.core.scopes import Scope
from crm_api.deals.repository import DealRepository, DealStageChangeRepository
from crm_api.deals.schemas import DealRead, DealStageChangeRead
from crm_api.feedback.repository import FeedbackRepository
from crm_api.feedback.schemas import FeedbackRead
from crm_api.interactions.repository import InteractionRepository
from crm_api.interactions.schemas import InteractionRead
from crm_api.orders.repository import OrderRepository
from crm_api.orders.schemas import OrderRead
from crm_api.tickets.repository import TicketCommentRepository, TicketRepository
from crm_api.tickets.schemas import CommentRead
from crm_api.tickets.service import read_tickets
from crm_api.timeline.repository import TimelineRepository
from crm_api.timeline.schemas import TimelineEntry, TimelineKind, TimelineParams

# What a key must be able to read to see each kind of entry: a timeline shows a key only what
# it could read on its own.
READ_SCOPE = {
    TimelineKind.interaction: Scope.interactions_read,
    TimelineKind.ticket: Scope.tickets_read,
    TimelineKind.ticket_comment: Scope.tickets_read,
    TimelineKind.deal: Scope.deals_read,
    TimelineKind.deal_stage_change: Scope.deals_read,
    TimelineKind.order: Scope.orders_read,
    TimelineKind.feedback: Scope.feedback_read,
}
Loader = tuple[Callable[[AsyncSession], Repository[Any]], Callable[[Any], BaseModel]]
SIMPLE_LOADERS: dict[TimelineKind, Loader] = {
    TimelineKind.interaction: (InteractionRepository, InteractionRead.model_validate),
    TimelineKind.ticket_comment: (TicketCommentRepository, CommentRead.model_validate),
    TimelineKind.deal: (DealRepository, DealRead.model_validate),
    TimelineKind.deal_stage_change: (DealStageChangeRepository, DealStageChangeRead.model_validate),
    TimelineKind.order: (OrderRepository, OrderRead.model_validate),
    TimelineKind.feedback: (FeedbackRepository, FeedbackRead.model_validate),
}


def _kinds(principal: Principal, params: TimelineParams) -> list[TimelineKind]:
    wanted = params.kind or list(TimelineKind)
    readable = [kind for kind in dict.fromkeys(wanted) if principal.has(READ_SCOPE[kind])]
    if not readable:
        scopes = sorted({READ_SCOPE[kind] for kind in wanted})
        raise Forbidden(f"This API key can read none of these kinds (needs one of {scopes}).")
    return readable


async def _records(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    entries: Sequence[tuple[TimelineKind, uuid.UUID]],
) -> dict[tuple[TimelineKind, uuid.UUID], BaseModel]:
    """Each entry's record as its own endpoint returns it: one query per kind on the page."""
    ids: dict[TimelineKind, list[uuid.UUID]] = defaultdict(list)
    for kind, id in entries:
        ids[kind].append(id)
    found: dict[tuple[TimelineKind, uuid.UUID], BaseModel] = {}
    for kind, kind_ids in ids.items():
        if kind is TimelineKind.ticket:
            tickets = await TicketRepository(session).live_by_ids(workspace_id, kind_ids)
            for ticket in await read_tickets(session, list(tickets.values())):
                found[(kind, ticket.id)] = ticket
            continue
        repository, to_read = SIMPLE_LOADERS[kind]
        for id, record in (await repository(session).live_by_ids(workspace_id, kind_ids)).items():
            found[(kind, id)] = to_read(record)
    return found


async def timeline(
    session: AsyncSession,
    principal: Principal,
    subject: str,
    subject_id: uuid.UUID,
    params: TimelineParams,
) -> tuple[list[TimelineEntry], str | None]:
    """A contact's or company's interactions, tickets and their comments, deals and their
    moves, orders and survey responses, in time order (newest first unless sorted otherwise)."""
    repository: Repository[Any] = (
        ContactRepository(session) if subject == "contact" else CompanyRepository(session)
    )
    await get_or_404(repository, principal.workspace_id, subject_id, subject)
    entries = TimelineRepository(session)
    view = entries.entries(
        principal.workspace_id,
        subject,
        subject_id,
        _kinds(principal, params),
        params.occurred_after,
        params.occurred_before,
    )
    sorts, id_sort = entries.sorts(view)
    page = page_request(
        sort=params.sort,
        default_sort="-occurred_at",
        allowed_sorts=sorts,
        id_field=id_sort,
        filters=params.filters(),
        cursor=params.cursor,
        limit=params.limit,
    )
    rows, next_cursor = make_page(await entries.page(view, page), page)
    records = await _records(session, principal.workspace_id, [(k, i) for k, i, _ in rows])
    data = [
        TimelineEntry.model_validate(
            {"kind": kind, "id": id, "occurred_at": at, kind.value: records.get((kind, id))}
        )
        for kind, id, at in rows
    ]
    return data, next_cursor
