"""The customer 360 timeline as one UNION ALL over every kind of record, paged by keyset on
(occurred_at, id): every arm reads an index on (workspace_id, <subject>, <time>)."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, Text, literal_column, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.contacts.models import Contact
from crm_api.core.pagination import PageRequest, SortField, keyset_after, order_by
from crm_api.deals.models import Deal, DealContact, DealStageChange
from crm_api.feedback.models import Feedback
from crm_api.interactions.models import Interaction
from crm_api.orders.models import Order
from crm_api.tickets.models import Ticket, TicketComment
from crm_api.timeline.schemas import TimelineKind

Entry = tuple[TimelineKind, uuid.UUID, datetime]


def _arm(kind: TimelineKind, id: Any, at: Any, *where: ColumnElement[bool]) -> Select[Any]:
    # The kind as a constant of the statement (an enum value, never input).
    label = literal_column(f"'{kind.value}'", Text).label("kind")
    return select(label, id.label("id"), at.label("occurred_at")).where(*where)


def _arms(
    workspace_id: uuid.UUID, subject: str, subject_id: uuid.UUID
) -> dict[TimelineKind, Select[Any]]:
    """Per kind, the statement of a contact's (`subject="contact"`) or company's entries."""
    interactions: ColumnElement[bool]
    tickets: ColumnElement[bool]
    deals: ColumnElement[bool]
    orders: ColumnElement[bool]
    feedback: ColumnElement[bool]
    if subject == "contact":
        interactions = Interaction.contact_id == subject_id
        tickets = Ticket.contact_id == subject_id
        deals = Deal.id.in_(
            select(DealContact.deal_id).where(
                DealContact.workspace_id == workspace_id, DealContact.contact_id == subject_id
            )
        )
        orders = Order.contact_id == subject_id
        feedback = Feedback.contact_id == subject_id
    else:
        interactions = Interaction.company_id == subject_id
        tickets = Ticket.company_id == subject_id
        deals = Deal.company_id == subject_id
        orders = Order.company_id == subject_id
        feedback = Feedback.contact_id.in_(
            select(Contact.id).where(
                Contact.workspace_id == workspace_id,
                Contact.company_id == subject_id,
                Contact.deleted_at.is_(None),
            )
        )
    live_tickets = select(Ticket.id).where(
        Ticket.workspace_id == workspace_id, tickets, Ticket.deleted_at.is_(None)
    )
    live_deals = select(Deal.id).where(
        Deal.workspace_id == workspace_id, deals, Deal.deleted_at.is_(None)
    )
    return {
        TimelineKind.interaction: _arm(
            TimelineKind.interaction,
            Interaction.id,
            Interaction.occurred_at,
            Interaction.workspace_id == workspace_id,
            interactions,
            Interaction.deleted_at.is_(None),
        ),
        TimelineKind.ticket: _arm(
            TimelineKind.ticket,
            Ticket.id,
            Ticket.created_at,
            Ticket.workspace_id == workspace_id,
            tickets,
            Ticket.deleted_at.is_(None),
        ),
        TimelineKind.ticket_comment: _arm(
            TimelineKind.ticket_comment,
            TicketComment.id,
            TicketComment.created_at,
            TicketComment.workspace_id == workspace_id,
            TicketComment.ticket_id.in_(live_tickets),
        ),
        TimelineKind.deal: _arm(
            TimelineKind.deal,
            Deal.id,
            Deal.created_at,
            Deal.workspace_id == workspace_id,
            deals,
            Deal.deleted_at.is_(None),
        ),
        # Moves only: a deal's creation is its `deal` entry.
        TimelineKind.deal_stage_change: _arm(
            TimelineKind.deal_stage_change,
            DealStageChange.id,
            DealStageChange.created_at,
            DealStageChange.workspace_id == workspace_id,
            DealStageChange.deal_id.in_(live_deals),
            DealStageChange.from_stage_id.is_not(None),
        ),
        TimelineKind.order: _arm(
            TimelineKind.order,
            Order.id,
            Order.ordered_at,
            Order.workspace_id == workspace_id,
            orders,
            Order.deleted_at.is_(None),
        ),
        TimelineKind.feedback: _arm(
            TimelineKind.feedback,
            Feedback.id,
            Feedback.responded_at,
            Feedback.workspace_id == workspace_id,
            feedback,
            Feedback.deleted_at.is_(None),
        ),
    }


class TimelineRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def entries(
        workspace_id: uuid.UUID,
        subject: str,
        subject_id: uuid.UUID,
        kinds: Sequence[TimelineKind],
        after: datetime | None,
        before: datetime | None,
    ) -> Subquery:
        arms = _arms(workspace_id, subject, subject_id)
        timeline = union_all(*(arms[kind] for kind in kinds)).subquery("timeline")
        if after is None and before is None:
            return timeline
        statement = select(timeline)
        if after is not None:
            statement = statement.where(timeline.c.occurred_at >= after)
        if before is not None:
            statement = statement.where(timeline.c.occurred_at < before)
        return statement.subquery("timeline_window")

    @staticmethod
    def sorts(timeline: Subquery) -> tuple[dict[str, SortField], SortField]:
        return {"occurred_at": SortField(timeline.c.occurred_at, datetime)}, SortField(
            timeline.c.id, uuid.UUID
        )

    async def page(
        self, timeline: Subquery, page: PageRequest
    ) -> list[tuple[Entry, tuple[Any, ...]]]:
        """One page plus one row, each with its sort values (for the cursor)."""
        statement = select(timeline.c.kind, timeline.c.id, timeline.c.occurred_at)
        if page.after is not None:
            statement = statement.where(keyset_after(page.order, page.after))
        statement = statement.order_by(*order_by(page.order)).limit(page.limit + 1)
        rows = (await self.session.execute(statement)).all()
        return [
            ((TimelineKind(kind), id, at), tuple(_sort_values(page, at, id)))
            for kind, id, at in rows
        ]


def _sort_values(page: PageRequest, at: datetime, id: uuid.UUID) -> list[Any]:
    return [at if key.field.kind is datetime else id for key in page.order]
