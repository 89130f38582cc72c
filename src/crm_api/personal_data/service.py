"""Export and erasure of a person (GDPR art. 15, 17, 20). Erasure scrubs every personal field
of the contact (and of contacts merged into it), of its interactions, tickets, comments and
survey answers, and every copy of them we keep: the event feed and webhook payloads, stored
idempotent responses, and the audit log's values. Orders, scores and answers stay, anonymised,
so revenue, CLV, NPS and retention do not change."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, func, null, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.analytics.service import contact_metrics
from crm_api.audit.models import AuditEntry
from crm_api.audit.schemas import AuditEntryRead
from crm_api.contacts.models import Contact, ContactEmail
from crm_api.contacts.repository import ContactRepository
from crm_api.contacts.schemas import ContactRead
from crm_api.core.auth import Principal
from crm_api.core.records import get_or_404
from crm_api.deals.models import Deal, DealContact
from crm_api.deals.repository import DealRepository
from crm_api.deals.schemas import DealRead
from crm_api.feedback.models import Feedback
from crm_api.feedback.repository import FeedbackRepository
from crm_api.feedback.schemas import FeedbackRead
from crm_api.interactions.models import Interaction
from crm_api.interactions.repository import InteractionRepository
from crm_api.interactions.schemas import InteractionRead
from crm_api.orders.models import Order
from crm_api.orders.repository import OrderRepository
from crm_api.orders.schemas import OrderRead
from crm_api.personal_data.schemas import ContactExport
from crm_api.segments.models import Segment, SegmentMember
from crm_api.segments.repository import SegmentRepository
from crm_api.segments.schemas import SegmentRead
from crm_api.tickets.models import Ticket, TicketComment
from crm_api.tickets.repository import TicketCommentRepository, TicketRepository
from crm_api.tickets.schemas import CommentRead
from crm_api.tickets.service import read_tickets
from crm_api.webhooks.events import emit
from crm_api.webhooks.models import Event

ERASED = "[erased]"


async def _all(session: AsyncSession, statement: Select[Any]) -> Sequence[Any]:
    rows: Sequence[Any] = (await session.execute(statement)).scalars().all()
    return rows


async def _person(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID, *, for_update: bool
) -> tuple[Contact, list[uuid.UUID]]:
    """The contact and the ids it stands for: its own and those of contacts merged into it."""
    contact = await get_or_404(
        ContactRepository(session), principal.workspace_id, contact_id, "contact",
        for_update=for_update,
    )  # fmt: skip
    merged = select(Contact.id).where(
        Contact.workspace_id == principal.workspace_id, Contact.merged_into_id == contact.id
    )
    return contact, [contact.id, *(await _all(session, merged))]


async def export_contact(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID
) -> ContactExport:
    contact, ids = await _person(session, principal, contact_id, for_update=False)
    workspace = principal.workspace_id
    merged = select(Contact).where(Contact.workspace_id == workspace, Contact.id.in_(ids[1:]))
    tickets = await _all(
        session, TicketRepository(session).scoped(workspace).where(Ticket.contact_id.in_(ids))
    )
    comments = (
        TicketCommentRepository(session)
        .scoped(workspace)
        .where(
            or_(
                TicketComment.ticket_id.in_([t.id for t in tickets]),
                TicketComment.author_contact_id.in_(ids),
            )
        )
    )
    deal_ids = select(DealContact.deal_id).where(
        DealContact.workspace_id == workspace, DealContact.contact_id.in_(ids)
    )
    member_of = select(SegmentMember.segment_id).where(
        SegmentMember.workspace_id == workspace, SegmentMember.contact_id.in_(ids)
    )
    audit = (
        select(AuditEntry)
        .where(AuditEntry.workspace_id == workspace, AuditEntry.resource_id.in_(ids))
        .order_by(AuditEntry.created_at, AuditEntry.id)
    )
    interactions = InteractionRepository(session).scoped(workspace)
    orders = OrderRepository(session).scoped(workspace)
    feedback = FeedbackRepository(session).scoped(workspace)
    segments = SegmentRepository(session).scoped(workspace)
    deals = DealRepository(session).scoped(workspace).where(Deal.id.in_(deal_ids))
    return ContactExport(
        exported_at=datetime.now(UTC),
        contact=ContactRead.model_validate(contact),
        merged_contacts=[ContactRead.model_validate(c) for c in await _all(session, merged)],
        interactions=[
            InteractionRead.model_validate(i)
            for i in await _all(session, interactions.where(Interaction.contact_id.in_(ids)))
        ],
        tickets=await read_tickets(session, tickets),
        ticket_comments=[CommentRead.model_validate(c) for c in await _all(session, comments)],
        deals=[DealRead.model_validate(d) for d in await _all(session, deals)],
        orders=[
            OrderRead.model_validate(o)
            for o in await _all(session, orders.where(Order.contact_id.in_(ids)))
        ],
        feedback=[
            FeedbackRead.model_validate(f)
            for f in await _all(session, feedback.where(Feedback.contact_id.in_(ids)))
        ],
        segments=[
            SegmentRead.model_validate(s)
            for s in await _all(session, segments.where(Segment.id.in_(member_of)))
        ],
        metrics=await contact_metrics(session, principal, contact.id),
        audit_log=[AuditEntryRead.model_validate(a) for a in await _all(session, audit)],
    )


async def erase_contact(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID
) -> Contact:
    contact, ids = await _person(session, principal, contact_id, for_update=True)
    workspace = principal.workspace_id
    now = datetime.now(UTC)
    mine = (Contact.workspace_id == workspace, Contact.id.in_(ids))
    await session.execute(
        update(Contact)
        .where(*mine)
        .values(
            first_name=None, last_name=None, email=None, additional_emails=[], phone=None,
            additional_phones=[], address=None, birthday=None, source=None, tags=[],
            custom_fields={}, external_id=None, erased_at=now, updated_at=now,
            version=Contact.version + 1,
        )
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    await session.execute(
        delete(ContactEmail).where(
            ContactEmail.workspace_id == workspace, ContactEmail.contact_id.in_(ids)
        )
    )
    touched = list(ids)
    for model, values in (
        (Interaction, {"subject": None, "summary": None, "tags": [], "custom_fields": {}}),
        (Feedback, {"comment": None, "tags": [], "custom_fields": {}}),
        (Order, {"tags": [], "custom_fields": {}}),
        (
            Ticket,
            {"subject": ERASED, "description": None, "csat_comment": None, "tags": [],
             "custom_fields": {}},
        ),
    ):  # fmt: skip
        model_: Any = model
        scrubbed = await session.execute(
            update(model_)
            .where(model_.workspace_id == workspace, model_.contact_id.in_(ids))
            .values(**values, updated_at=now)
            .returning(model_.id)
            .execution_options(synchronize_session=False)
        )
        touched += list(scrubbed.scalars())
    tickets = select(Ticket.id).where(Ticket.workspace_id == workspace, Ticket.contact_id.in_(ids))
    comments = await session.execute(
        update(TicketComment)
        .where(
            TicketComment.workspace_id == workspace,
            or_(TicketComment.ticket_id.in_(tickets), TicketComment.author_contact_id.in_(ids)),
        )
        .values(body=ERASED)
        .returning(TicketComment.id)
        .execution_options(synchronize_session=False)
    )
    touched += list(comments.scalars())
    await _scrub_copies(session, workspace, touched)
    await session.refresh(contact)
    emit(session, workspace, "contact.erased", ContactRead.model_validate(contact))
    return contact


# The audit log is append-only but for this: its trigger lets an erasure blank the values an
# entry recorded (migration 3c7d2e9a1f55), and nothing else.
# A stored response that names an erased record is forgotten (a retry with its key is then
# carried out anew, and finds the record erased).
_FORGET_RESPONSES = text(
    "DELETE FROM idempotency_records r WHERE r.workspace_id = :workspace_id AND EXISTS ("
    "SELECT 1 FROM unnest(CAST(:ids AS uuid[])) AS erased(id) "
    "WHERE position(convert_to(erased.id::text, 'UTF8') IN r.response_body) > 0)"
)
_ERASURE = text("SELECT set_config('crm.erasure', 'on', true)")
_ERASURE_OVER = text("SELECT set_config('crm.erasure', '', true)")


async def _scrub_copies(
    session: AsyncSession, workspace_id: uuid.UUID, ids: list[uuid.UUID]
) -> None:
    """Every copy of the erased records: events (the feed, and the payloads webhooks are sent
    with), stored idempotent responses, the audit log's recorded values."""
    await session.execute(
        update(Event)
        .where(Event.workspace_id == workspace_id, Event.resource_id.in_(ids))
        .values(
            data=func.json_build_object("id", Event.resource_id, "erased", True), changes=null()
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(_FORGET_RESPONSES, {"workspace_id": workspace_id, "ids": ids})
    await session.execute(_ERASURE)
    await session.execute(
        update(AuditEntry)
        .where(AuditEntry.workspace_id == workspace_id, AuditEntry.resource_id.in_(ids))
        .values(changes=null())  # SQL NULL: None would be JSON's null
        .execution_options(synchronize_session=False)
    )
    await session.execute(_ERASURE_OVER)
