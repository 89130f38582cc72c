import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, or_, select, update

from crm_api.companies.repository import company_relation
from crm_api.contacts.repository import contact_relation
from crm_api.core.filters import (
    FilterField,
    FilterFields,
    Kind,
    choice,
    record_fields,
)
from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository, record_filters
from crm_api.core.search import matches_all_terms
from crm_api.tickets.models import SlaPolicy, Ticket, TicketComment, TicketStatusChange
from crm_api.tickets.schemas import (
    Channel,
    CommentListParams,
    Priority,
    TicketListParams,
    TicketStatus,
)

FAR_FUTURE = datetime.fromisoformat("9999-12-31T00:00:00+00:00")

SLA_POLICY_ID_SORT = SortField(SlaPolicy.id, uuid.UUID)
SLA_POLICY_SORTS = {
    "created_at": SortField(SlaPolicy.created_at, datetime),
    "name": SortField(func.crm_fold(SlaPolicy.name), str),
}
TICKET_FILTERS = FilterFields(
    fields={
        **record_fields(Ticket),
        "subject": FilterField(Kind.text, Ticket.subject),
        "status": choice(Ticket.status, TicketStatus),
        "priority": choice(Ticket.priority, Priority),
        "channel": choice(Ticket.channel, Channel),
        "category": FilterField(Kind.text, Ticket.category),
        "contact_id": FilterField(Kind.id, Ticket.contact_id),
        "company_id": FilterField(Kind.id, Ticket.company_id),
        "assignee_id": FilterField(Kind.id, Ticket.assignee_id),
        "team_id": FilterField(Kind.id, Ticket.team_id),
        "sla_policy_id": FilterField(Kind.id, Ticket.sla_policy_id),
        "reopened_count": FilterField(Kind.number, Ticket.reopened_count),
        "csat_score": FilterField(Kind.number, Ticket.csat_score),
        **{
            name: FilterField(Kind.datetime, getattr(Ticket, name))
            for name in (
                "first_response_due_at",
                "resolution_due_at",
                "first_responded_at",
                "resolved_at",
                "closed_at",
                "first_response_breached_at",
                "resolution_breached_at",
            )
        },
    },
    relations={
        "contact": contact_relation(Ticket),
        "company": company_relation(Ticket),
    },
    custom_fields=Ticket.custom_fields,
)
TICKET_ID_SORT = SortField(Ticket.id, uuid.UUID)
TICKET_SORTS = {
    "created_at": SortField(Ticket.created_at, datetime),
    "updated_at": SortField(Ticket.updated_at, datetime),
    # Most urgent first is `-priority`.
    "priority": SortField(
        case({"low": 0, "normal": 1, "high": 2, "urgent": 3}, value=Ticket.priority), int
    ),
    # Tickets without a due time sort as if due last.
    "first_response_due_at": SortField(
        func.coalesce(Ticket.first_response_due_at, FAR_FUTURE), datetime
    ),
    "resolution_due_at": SortField(func.coalesce(Ticket.resolution_due_at, FAR_FUTURE), datetime),
}
COMMENT_ID_SORT = SortField(TicketComment.id, uuid.UUID)
COMMENT_SORTS = {"created_at": SortField(TicketComment.created_at, datetime)}
STATUS_CHANGE_ID_SORT = SortField(TicketStatusChange.id, uuid.UUID)
STATUS_CHANGE_SORTS = {"changed_at": SortField(TicketStatusChange.created_at, datetime)}


class SlaPolicyRepository(Repository[SlaPolicy]):
    model = SlaPolicy

    async def default(self, workspace_id: uuid.UUID) -> SlaPolicy | None:
        statement = self.scoped(workspace_id).where(SlaPolicy.is_default.is_(True))
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def clear_default(self, workspace_id: uuid.UUID, keep: uuid.UUID) -> list[SlaPolicy]:
        """Unmake the workspace's default policy (other than `keep`); returns it, changed."""
        result = await self.session.execute(
            update(SlaPolicy)
            .where(
                SlaPolicy.workspace_id == workspace_id,
                SlaPolicy.is_default.is_(True),
                SlaPolicy.deleted_at.is_(None),
                SlaPolicy.id != keep,
            )
            .values(is_default=False, version=SlaPolicy.version + 1, updated_at=func.now())
            .returning(SlaPolicy)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return list(result.scalars())

    async def by_ids(
        self, workspace_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, SlaPolicy]:
        """These policies, deleted ones too: a ticket keeps counting by the policy it got."""
        if not ids:
            return {}
        statement = select(SlaPolicy).where(
            SlaPolicy.workspace_id == workspace_id, SlaPolicy.id.in_(set(ids))
        )
        return {policy.id: policy for policy in (await self.session.execute(statement)).scalars()}


class TicketRepository(Repository[Ticket]):
    model = Ticket

    def list_filters(self, params: TicketListParams) -> list[ColumnElement[bool]]:
        where = record_filters(Ticket, params)
        if params.q is not None:
            where.append(matches_all_terms(Ticket.search_text, params.q))
        if params.status:
            where.append(Ticket.status.in_([str(s) for s in params.status]))
        if params.priority:
            where.append(Ticket.priority.in_([str(p) for p in params.priority]))
        for field in ("channel", "category", "assignee_id", "team_id", "contact_id", "company_id"):
            if (value := getattr(params, field)) is not None:
                where.append(getattr(Ticket, field) == value)
        if params.unassigned is not None:
            unassigned = Ticket.assignee_id.is_(None)
            where.append(unassigned if params.unassigned else ~unassigned)
        if params.sla_breached is not None:
            breached = or_(
                Ticket.first_response_breached_at.is_not(None),
                Ticket.resolution_breached_at.is_not(None),
            )
            where.append(breached if params.sla_breached else ~breached)
        return where

    async def due_for_breach(self, now: datetime, limit: int) -> list[Ticket]:
        """Tickets of every workspace past a due time whose breach is not yet announced, locked;
        those another worker holds are skipped."""
        first_response = (
            Ticket.first_responded_at.is_(None)
            & Ticket.first_response_breached_at.is_(None)
            & Ticket.first_response_due_at.is_not(None)
            & Ticket.deleted_at.is_(None)
            & (Ticket.first_response_due_at <= now)
        )
        resolution = (
            Ticket.resolved_at.is_(None)
            & Ticket.resolution_breached_at.is_(None)
            & Ticket.resolution_due_at.is_not(None)
            & Ticket.deleted_at.is_(None)
            & (Ticket.resolution_due_at <= now)
        )
        # Each arm matches its partial index; the union is locked row by row.
        keys = (
            select(Ticket.workspace_id, Ticket.id)
            .where(first_response)
            .limit(limit)
            .union(select(Ticket.workspace_id, Ticket.id).where(resolution).limit(limit))
            .subquery()
        )
        statement = (
            select(Ticket)
            .join(keys, (Ticket.workspace_id == keys.c.workspace_id) & (Ticket.id == keys.c.id))
            .order_by(Ticket.workspace_id, Ticket.id)
            .limit(limit)
            .with_for_update(of=Ticket, skip_locked=True)
        )
        return list((await self.session.execute(statement)).scalars())

    async def unlink(self, workspace_id: uuid.UUID, field: str, value: uuid.UUID) -> list[Ticket]:
        """Clear `field` (company_id, team_id) where it holds `value`; the tickets, changed."""
        column = getattr(Ticket, field)
        result = await self.session.execute(
            update(Ticket)
            .where(
                Ticket.workspace_id == workspace_id, column == value, Ticket.deleted_at.is_(None)
            )
            .values({field: None, "version": Ticket.version + 1, "updated_at": func.now()})
            .returning(Ticket)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return list(result.scalars())


class TicketCommentRepository(Repository[TicketComment]):
    model = TicketComment
    gone_column = None

    def of_ticket(
        self, ticket_id: uuid.UUID, params: CommentListParams
    ) -> list[ColumnElement[bool]]:
        where = [TicketComment.ticket_id == ticket_id]
        if params.kind is not None:
            where.append(TicketComment.kind == params.kind)
        return where

    async def get_in_ticket(
        self, workspace_id: uuid.UUID, ticket_id: uuid.UUID, id: uuid.UUID
    ) -> TicketComment | None:
        statement = self.scoped(workspace_id).where(
            TicketComment.ticket_id == ticket_id, TicketComment.id == id
        )
        return (await self.session.execute(statement)).scalar_one_or_none()


class TicketStatusChangeRepository(Repository[TicketStatusChange]):
    model = TicketStatusChange
    gone_column = None

    def of_ticket(self, ticket_id: uuid.UUID) -> list[ColumnElement[bool]]:
        return [TicketStatusChange.ticket_id == ticket_id]
