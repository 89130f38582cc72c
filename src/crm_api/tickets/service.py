import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.companies.repository import CompanyRepository
from crm_api.contacts.repository import ContactRepository
from crm_api.core.auth import Principal
from crm_api.core.batch import BatchItemResult, upsert_each
from crm_api.core.db import new_id
from crm_api.core.errors import Conflict, InvalidInput, NotFound
from crm_api.core.field_types import CustomFieldResource
from crm_api.core.filters import SearchParams, search_description
from crm_api.core.hooks import on_delete, repoint_on_merge
from crm_api.core.patch import Changes, assign, merge_patch
from crm_api.core.records import (
    apply_fields,
    bump_version,
    ensure_external_id_free,
    ensure_live_references,
    get_by_external_id_or_404,
    get_or_404,
    list_records,
    soft_delete,
    upsert_by_external_id,
)
from crm_api.custom_fields.service import search_records
from crm_api.tickets.models import SlaPolicy, Ticket, TicketComment, TicketStatusChange
from crm_api.tickets.repository import (
    COMMENT_ID_SORT,
    COMMENT_SORTS,
    SLA_POLICY_ID_SORT,
    SLA_POLICY_SORTS,
    STATUS_CHANGE_ID_SORT,
    STATUS_CHANGE_SORTS,
    TICKET_FILTERS,
    TICKET_ID_SORT,
    TICKET_SORTS,
    SlaPolicyRepository,
    TicketCommentRepository,
    TicketRepository,
    TicketStatusChangeRepository,
)
from crm_api.tickets.schemas import (
    CommentCreate,
    CommentKind,
    CommentListParams,
    CommentRead,
    SlaClock,
    SlaPolicyCreate,
    SlaPolicyListParams,
    SlaPolicyRead,
    SlaPolicyUpdate,
    StatusHistoryParams,
    TicketCreate,
    TicketCsat,
    TicketFields,
    TicketListParams,
    TicketRead,
    TicketSla,
    TicketUpdate,
    TicketUpsert,
    TicketUpsertItem,
)
from crm_api.tickets.sla import (
    BusinessHours,
    TargetStatus,
    add_business_time,
    business_seconds_between,
    target_status,
)
from crm_api.users.repository import TeamRepository
from crm_api.users.service import ensure_assignable_owners
from crm_api.webhooks.events import emit

# The status machine: where a ticket may go from each status. Leaving `resolved` for `open` or
# `pending` is a reopening; `closed` is final.
TRANSITIONS = {
    "new": {"open", "pending", "resolved", "closed"},
    "open": {"pending", "resolved", "closed"},
    "pending": {"open", "resolved", "closed"},
    "resolved": {"open", "pending", "closed"},
    "closed": set(),
}
SLA_TARGETS = (
    # (name, due column, reached column, breach-announced column)
    ("first_response", "first_response_due_at", "first_responded_at", "first_response_breached_at"),
    ("resolution", "resolution_due_at", "resolved_at", "resolution_breached_at"),
)


class InvalidTransition(Conflict):
    slug, title = "invalid-transition", "Not allowed in this status"


# SLA policies


def _hours(policy: SlaPolicy | None) -> BusinessHours | None:
    if policy is None or policy.business_hours is None:
        return None
    return BusinessHours.from_json(policy.business_hours)


def _announce_policy(
    session: AsyncSession, action: str, policy: SlaPolicy, changes: Changes | None = None
) -> None:
    data = SlaPolicyRead.model_validate(policy)
    emit(session, policy.workspace_id, f"sla_policy.{action}", data, changes=changes)


def _policy_values(
    policy: SlaPolicy | None, data: SlaPolicyCreate | SlaPolicyUpdate
) -> dict[str, Any]:
    """`targets` merged into the policy's (RFC 7396: a null removes a target or a priority)
    and `business_hours` whole, as sent."""
    values: dict[str, Any] = {}
    sent = data.model_fields_set
    if "targets" in sent:
        patch = data.targets.model_dump(exclude_unset=True) if data.targets else None
        merged = merge_patch(policy.targets if policy else {}, patch) or {}
        values["targets"] = {priority: t for priority, t in merged.items() if t}
    if "business_hours" in sent:
        hours = data.business_hours
        values["business_hours"] = hours.model_dump() if hours is not None else None
    return values


async def _make_default(session: AsyncSession, policy: SlaPolicy) -> None:
    for previous in await SlaPolicyRepository(session).clear_default(
        policy.workspace_id, policy.id
    ):
        _announce_policy(session, "updated", previous, {"is_default": (True, False)})


async def create_sla_policy(
    session: AsyncSession, principal: Principal, data: SlaPolicyCreate
) -> SlaPolicy:
    repository = SlaPolicyRepository(session)
    await ensure_external_id_free(repository, principal.workspace_id, data.external_id, "policy")
    policy = SlaPolicy(
        id=new_id(),
        workspace_id=principal.workspace_id,
        name=data.name,
        external_id=data.external_id,
        is_default=bool(data.is_default),
        **{"targets": {}, **_policy_values(None, data)},
    )
    if policy.is_default:
        await _make_default(session, policy)
    repository.add(policy)
    await session.flush()
    _announce_policy(session, "created", policy)
    return policy


async def get_sla_policy(session: AsyncSession, principal: Principal, id: uuid.UUID) -> SlaPolicy:
    return await get_or_404(SlaPolicyRepository(session), principal.workspace_id, id, "policy")


async def list_sla_policies(
    session: AsyncSession, principal: Principal, params: SlaPolicyListParams
) -> tuple[list[SlaPolicy], str | None]:
    return await list_records(
        SlaPolicyRepository(session),
        principal.workspace_id,
        params,
        [],
        SLA_POLICY_SORTS,
        SLA_POLICY_ID_SORT,
    )


async def update_sla_policy(
    session: AsyncSession,
    principal: Principal,
    id: uuid.UUID,
    data: SlaPolicyUpdate,
    if_match: str | None,
) -> SlaPolicy:
    repository = SlaPolicyRepository(session)
    policy = await get_or_404(
        repository, principal.workspace_id, id, "policy", for_update=True, if_match=if_match
    )
    sent = data.model_fields_set
    if "external_id" in sent and data.external_id != policy.external_id:
        await ensure_external_id_free(
            repository, principal.workspace_id, data.external_id, "policy"
        )
    if "is_default" in sent and data.is_default is None:
        raise InvalidInput(("body", "is_default"), "true or false.")
    changes = apply_fields(policy, data, sent - {"targets", "business_hours"})
    for field, value in _policy_values(policy, data).items():
        assign(policy, changes, field, value)
    if changes.get("is_default", (None, False))[1]:
        await _make_default(session, policy)
    bump_version(policy, changes)
    await session.flush()
    if changes:
        _announce_policy(session, "updated", policy, changes)
    return policy


async def delete_sla_policy(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None
) -> None:
    """Tickets under the policy keep their due times and the clock they were counted by."""
    policy = await get_or_404(
        SlaPolicyRepository(session),
        principal.workspace_id,
        id,
        "policy",
        for_update=True,
        if_match=if_match,
    )
    soft_delete(policy)
    await session.flush()
    _announce_policy(session, "deleted", policy)


# Tickets: how they read


def _clock(
    due: datetime | None, reached: datetime | None, now: datetime, hours: BusinessHours | None
) -> SlaClock | None:
    if due is None:
        return None
    return SlaClock(
        due_at=due,
        status=target_status(due, reached, now),
        reached_at=reached,
        remaining_seconds=None if reached else business_seconds_between(now, due, hours),
    )


def _csat_of(ticket: Ticket) -> TicketCsat | None:
    if ticket.csat_feedback_id is None:
        return None
    return TicketCsat(
        feedback_id=ticket.csat_feedback_id,
        score=ticket.csat_score,
        comment=ticket.csat_comment,
        responded_at=ticket.csat_responded_at,
    )


def _read(ticket: Ticket, policy: SlaPolicy | None, now: datetime) -> TicketRead:
    hours = _hours(policy)
    sla = TicketSla(
        policy_id=ticket.sla_policy_id,
        first_response=_clock(ticket.first_response_due_at, ticket.first_responded_at, now, hours),
        resolution=_clock(ticket.resolution_due_at, ticket.resolved_at, now, hours),
    )
    computed = {"sla": sla, "csat": _csat_of(ticket)}
    fields = {
        name: getattr(ticket, name) for name in TicketRead.model_fields if name not in computed
    }
    return TicketRead.model_validate({**fields, **computed})


async def read_tickets(session: AsyncSession, tickets: Sequence[Ticket]) -> list[TicketRead]:
    """Tickets as the API shows them, their SLA clocks as of now (one query for the policies)."""
    if not tickets:
        return []
    ids = [t.sla_policy_id for t in tickets if t.sla_policy_id is not None]
    policies = await SlaPolicyRepository(session).by_ids(tickets[0].workspace_id, ids)
    now = datetime.now(UTC)
    return [
        _read(t, policies.get(t.sla_policy_id) if t.sla_policy_id else None, now) for t in tickets
    ]


async def _read_one(session: AsyncSession, ticket: Ticket) -> TicketRead:
    [read] = await read_tickets(session, [ticket])
    return read


# Tickets: how they change


def _schedule(ticket: Ticket, policy: SlaPolicy | None, changes: Changes) -> None:
    """Due times from the ticket's creation, by its policy's targets for its priority."""
    targets = (policy.targets.get(ticket.priority) or {}) if policy else {}
    hours = _hours(policy)
    for field, minutes in (
        ("first_response_due_at", targets.get("first_response_minutes")),
        ("resolution_due_at", targets.get("resolution_minutes")),
    ):
        due = add_business_time(ticket.created_at, minutes, hours) if minutes else None
        assign(ticket, changes, field, due)


def _set_status(ticket: Ticket, status: str, changes: Changes, now: datetime) -> bool:
    """Move the ticket along the status machine; whether its status changed."""
    old = ticket.status
    if status == old:
        return False
    if status not in TRANSITIONS[old]:
        allowed = sorted(TRANSITIONS[old])
        raise InvalidTransition(
            f"A {old} ticket cannot become {status}"
            + (f"; it may become {', '.join(allowed)}." if allowed else ": closed is final."),
            allowed=allowed,
        )
    assign(ticket, changes, "status", status)
    if old == "resolved" and status in ("open", "pending"):
        assign(ticket, changes, "reopened_count", ticket.reopened_count + 1)
        assign(ticket, changes, "resolved_at", None)
    if status in ("resolved", "closed") and ticket.resolved_at is None:
        assign(ticket, changes, "resolved_at", now)
    if status == "closed":
        assign(ticket, changes, "closed_at", now)
    return True


def _record_status(
    session: AsyncSession, principal: Principal, ticket: Ticket, old: str | None, now: datetime
) -> None:
    session.add(
        TicketStatusChange(
            id=new_id(),
            workspace_id=ticket.workspace_id,
            ticket_id=ticket.id,
            from_status=old,
            to_status=ticket.status,
            api_key_id=principal.api_key_id,
            user_id=principal.user_id,
            created_at=now,
        )
    )


async def _check_references(
    session: AsyncSession, principal: Principal, ticket: Ticket | None, data: TicketFields
) -> SlaPolicy | None:
    """Everything the write points at exists (422 naming the field); the policy it sets."""
    sent = data.model_fields_set
    for field in ("contact_id", "status", "priority"):
        if field in sent and getattr(data, field) is None:
            raise InvalidInput(("body", field), f"A ticket always has a {field.split('_')[0]}.")

    def changed(field: str) -> Any:
        value = getattr(data, field)
        return value if value is not None and getattr(ticket, field, None) != value else None

    workspace_id = principal.workspace_id
    await ensure_live_references(
        workspace_id,
        [
            ("contact_id", ContactRepository(session), "contact", changed("contact_id")),
            ("company_id", CompanyRepository(session), "company", changed("company_id")),
            ("team_id", TeamRepository(session), "team", changed("team_id")),
        ],
    )
    if (assignee_id := changed("assignee_id")) is not None:
        await ensure_assignable_owners(session, principal, [assignee_id], "assignee_id")
    if data.sla_policy_id is not None:
        policy = await SlaPolicyRepository(session).get(workspace_id, data.sla_policy_id)
        if policy is None:
            raise InvalidInput(
                ("body", "sla_policy_id"), f"No policy with id {data.sla_policy_id}."
            )
        return policy
    if ticket is None and "sla_policy_id" not in sent:
        return await SlaPolicyRepository(session).default(workspace_id)
    return None


async def _announce_breaches(
    session: AsyncSession, ticket: Ticket, now: datetime, read: TicketRead | None = None
) -> int:
    """Emit ticket.sla_breached for each target that is late and not yet announced, and mark
    it announced, so it is emitted once whoever finds it first (a write or the worker)."""
    breached = []
    for name, due, reached, announced in SLA_TARGETS:
        due_at = getattr(ticket, due)
        if due_at is None or getattr(ticket, announced) is not None:
            continue
        if target_status(due_at, getattr(ticket, reached), now) is TargetStatus.breached:
            setattr(ticket, announced, now)
            breached.append(name)
    if breached:
        await session.flush()
        data = read or await _read_one(session, ticket)
        for name in breached:
            changes: Changes = {f"sla.{name}.status": (TargetStatus.running, TargetStatus.breached)}
            emit(session, ticket.workspace_id, "ticket.sla_breached", data, changes=changes)
    return len(breached)


async def _announce_write(
    session: AsyncSession,
    ticket: Ticket,
    changes: Changes,
    moved_from: str | None,
    now: datetime,
) -> TicketRead:
    await session.flush()
    read = await _read_one(session, ticket)
    if changes:
        emit(session, ticket.workspace_id, "ticket.updated", read, changes=changes)
    if moved_from is not None:
        moved: Changes = {
            field: changes[field]
            for field in ("status", "resolved_at", "closed_at", "reopened_count")
            if field in changes
        }
        emit(session, ticket.workspace_id, "ticket.status_changed", read, changes=moved)
    await _announce_breaches(session, ticket, now, read)
    return read


async def _insert(
    session: AsyncSession, principal: Principal, data: TicketFields, external_id: str | None
) -> tuple[Ticket, TicketRead]:
    now = datetime.now(UTC)
    policy = await _check_references(session, principal, None, data)
    ticket = Ticket(
        id=new_id(),
        workspace_id=principal.workspace_id,
        external_id=external_id,
        status="new",
        priority=str(data.priority or "normal"),
        tags=[],
        custom_fields={},
        created_at=now,
        updated_at=now,
        sla_policy_id=policy.id if policy else None,
    )
    fields = data.model_fields_set - {"status", "priority", "sla_policy_id", "external_id"}
    apply_fields(ticket, data, fields)
    principal.hold_to_own_records(ticket, "assignee_id")
    _set_status(ticket, str(data.status or "new"), {}, now)
    _schedule(ticket, policy, {})
    TicketRepository(session).add(ticket)
    await session.flush()
    _record_status(session, principal, ticket, None, now)
    await session.flush()
    read = await _read_one(session, ticket)
    emit(session, ticket.workspace_id, "ticket.created", read)
    await _announce_breaches(session, ticket, now, read)
    return ticket, read


async def create_ticket(
    session: AsyncSession, principal: Principal, data: TicketCreate
) -> TicketRead:
    await ensure_external_id_free(
        TicketRepository(session), principal.workspace_id, data.external_id, "ticket"
    )
    _, read = await _insert(session, principal, data, data.external_id)
    return read


async def _change(
    session: AsyncSession, principal: Principal, ticket: Ticket, data: TicketFields
) -> tuple[Changes, TicketRead]:
    now = datetime.now(UTC)
    policy = await _check_references(session, principal, ticket, data)
    sent = data.model_fields_set
    was_closed = ticket.status == "closed"
    old_status = ticket.status
    changes = apply_fields(ticket, data, sent - {"status", "sla_policy_id", "external_id"})
    principal.hold_to_own_records(ticket, "assignee_id")
    if "external_id" in sent:
        assign(ticket, changes, "external_id", getattr(data, "external_id", None))
    moved = data.status is not None and _set_status(ticket, str(data.status), changes, now)
    if "sla_policy_id" in sent:
        assign(ticket, changes, "sla_policy_id", data.sla_policy_id)
    if "sla_policy_id" in changes or "priority" in changes:
        if policy is None and ticket.sla_policy_id is not None:
            policies = await SlaPolicyRepository(session).by_ids(
                ticket.workspace_id, [ticket.sla_policy_id]
            )
            policy = policies[ticket.sla_policy_id]
        _schedule(ticket, policy, changes)
    if was_closed and changes:
        raise InvalidTransition("The ticket is closed, and closed is final.", allowed=[])
    bump_version(ticket, changes)
    if moved:
        _record_status(session, principal, ticket, old_status, now)
    read = await _announce_write(session, ticket, changes, old_status if moved else None, now)
    return changes, read


async def _lock(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None = None
) -> Ticket:
    return await get_or_404(
        TicketRepository(session),
        principal.workspace_id,
        id,
        "ticket",
        for_update=True,
        if_match=if_match,
    )


async def update_ticket(
    session: AsyncSession,
    principal: Principal,
    id: uuid.UUID,
    data: TicketUpdate,
    if_match: str | None,
) -> TicketRead:
    ticket = await _lock(session, principal, id, if_match)
    if "external_id" in data.model_fields_set and data.external_id != ticket.external_id:
        await ensure_external_id_free(
            TicketRepository(session), principal.workspace_id, data.external_id, "ticket"
        )
    _, read = await _change(session, principal, ticket, data)
    return read


async def upsert_ticket(
    session: AsyncSession, principal: Principal, external_id: str, data: TicketUpsert
) -> tuple[TicketRead, bool, Changes]:
    reads: list[TicketRead] = []

    async def create() -> Ticket:
        for field in ("subject", "contact_id"):
            if getattr(data, field) is None:
                raise InvalidInput(("body", field), f"`{field}` is required to create a ticket.")
        ticket, read = await _insert(session, principal, data, external_id)
        reads.append(read)
        return ticket

    async def update(ticket: Ticket) -> Changes:
        changes, read = await _change(session, principal, ticket, data)
        reads.append(read)
        return changes

    _, created, changes = await upsert_by_external_id(
        session, TicketRepository(session), principal.workspace_id, external_id, create, update
    )
    return reads[-1], created, changes


async def batch_upsert_tickets(
    session: AsyncSession, principal: Principal, items: Sequence[TicketUpsertItem]
) -> list[BatchItemResult]:
    async def upsert(item: TicketUpsertItem) -> tuple[TicketRead, bool, Changes]:
        return await upsert_ticket(session, principal, item.external_id, item)

    return await upsert_each(session, "/v1/tickets/batch/upsert", enumerate(items), upsert)


async def get_ticket(session: AsyncSession, principal: Principal, id: uuid.UUID) -> TicketRead:
    ticket = await get_or_404(TicketRepository(session), principal.workspace_id, id, "ticket")
    return await _read_one(session, ticket)


async def get_ticket_by_external_id(
    session: AsyncSession, principal: Principal, external_id: str
) -> TicketRead:
    ticket = await get_by_external_id_or_404(
        TicketRepository(session), principal.workspace_id, external_id, "ticket"
    )
    return await _read_one(session, ticket)


async def list_tickets(
    session: AsyncSession, principal: Principal, params: TicketListParams
) -> tuple[list[TicketRead], str | None]:
    repository = TicketRepository(session)
    tickets, next_cursor = await list_records(
        repository,
        principal.workspace_id,
        params,
        repository.list_filters(params),
        TICKET_SORTS,
        TICKET_ID_SORT,
    )
    return await read_tickets(session, tickets), next_cursor


SEARCH_DESCRIPTION = search_description(TICKET_FILTERS)


async def search_tickets(
    session: AsyncSession, principal: Principal, params: SearchParams
) -> tuple[list[TicketRead], str | None]:
    tickets, next_cursor = await search_records(
        TicketRepository(session),
        principal.workspace_id,
        params,
        CustomFieldResource.tickets,
        TICKET_FILTERS,
        TICKET_SORTS,
        TICKET_ID_SORT,
    )
    return await read_tickets(session, tickets), next_cursor


async def delete_ticket(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None
) -> None:
    ticket = await _lock(session, principal, id, if_match)
    soft_delete(ticket)
    await session.flush()
    emit(session, ticket.workspace_id, "ticket.deleted", await _read_one(session, ticket))


async def list_status_history(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, params: StatusHistoryParams
) -> tuple[list[TicketStatusChange], str | None]:
    await get_or_404(TicketRepository(session), principal.workspace_id, ticket_id, "ticket")
    repository = TicketStatusChangeRepository(session)
    return await list_records(
        repository,
        principal.workspace_id,
        params,
        repository.of_ticket(ticket_id),
        STATUS_CHANGE_SORTS,
        STATUS_CHANGE_ID_SORT,
        default_sort="changed_at",
    )


# Comments


async def _author(
    session: AsyncSession, principal: Principal, data: CommentCreate
) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """(user, contact): exactly one of them writes the comment."""
    if data.author_user_id is not None and data.author_contact_id is not None:
        raise InvalidInput(("body", "author_contact_id"), "A comment has one author.")
    if data.author_contact_id is not None:
        if data.kind is CommentKind.note:
            raise InvalidInput(("body", "kind"), "Internal notes are written by users.")
        live = await ContactRepository(session).live_ids(
            principal.workspace_id, [data.author_contact_id]
        )
        if data.author_contact_id not in live:
            raise InvalidInput(
                ("body", "author_contact_id"), f"No contact with id {data.author_contact_id}."
            )
        return None, data.author_contact_id
    user_id = data.author_user_id or principal.user_id
    if user_id is None:
        raise InvalidInput(
            ("body", "author_user_id"),
            "Name the author (a user or the contact): this API key acts as no user.",
        )
    await ensure_assignable_owners(session, principal, [user_id], "author_user_id")
    return user_id, None


async def create_comment(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, data: CommentCreate
) -> TicketComment:
    ticket = await _lock(session, principal, ticket_id)
    if ticket.status == "closed":
        raise InvalidTransition("The ticket is closed: open a new one instead.", allowed=[])
    user_id, contact_id = await _author(session, principal, data)
    now = datetime.now(UTC)
    comment = TicketComment(
        id=new_id(),
        workspace_id=ticket.workspace_id,
        ticket_id=ticket.id,
        body=data.body,
        kind=str(data.kind),
        author_user_id=user_id,
        author_contact_id=contact_id,
        api_key_id=principal.api_key_id,
        created_at=now,
    )
    session.add(comment)
    old_status = ticket.status
    changes: Changes = {}
    moved = False
    if data.kind is CommentKind.reply and user_id is not None:
        if ticket.first_responded_at is None:
            assign(ticket, changes, "first_responded_at", now)
        if ticket.status == "new":
            moved = _set_status(ticket, "open", changes, now)
    elif data.kind is CommentKind.reply and ticket.status in ("pending", "resolved"):
        moved = _set_status(ticket, "open", changes, now)  # the customer wrote back
    bump_version(ticket, changes)
    if moved:
        _record_status(session, principal, ticket, old_status, now)
    await session.flush()
    emit(
        session, ticket.workspace_id, "ticket_comment.created", CommentRead.model_validate(comment)
    )
    await _announce_write(session, ticket, changes, old_status if moved else None, now)
    return comment


async def list_comments(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, params: CommentListParams
) -> tuple[list[TicketComment], str | None]:
    await get_or_404(TicketRepository(session), principal.workspace_id, ticket_id, "ticket")
    repository = TicketCommentRepository(session)
    return await list_records(
        repository,
        principal.workspace_id,
        params,
        repository.of_ticket(ticket_id, params),
        COMMENT_SORTS,
        COMMENT_ID_SORT,
    )


async def get_comment(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, id: uuid.UUID
) -> TicketComment:
    await get_or_404(TicketRepository(session), principal.workspace_id, ticket_id, "ticket")
    comment = await TicketCommentRepository(session).get_in_ticket(
        principal.workspace_id, ticket_id, id
    )
    if comment is None:
        raise NotFound(f"No comment with id {id} on ticket {ticket_id}.")
    return comment


async def show_csat(
    session: AsyncSession, workspace_id: uuid.UUID, ticket_id: uuid.UUID, csat: TicketCsat | None
) -> None:
    """Show this CSAT response (the latest about the ticket, or none) on the ticket."""
    ticket = await TicketRepository(session).get(workspace_id, ticket_id, for_update=True)
    if ticket is None:
        return
    before = _csat_of(ticket)
    if csat == before:
        return
    for field in ("feedback_id", "score", "comment", "responded_at"):
        setattr(ticket, f"csat_{field}", getattr(csat, field) if csat else None)
    changes: Changes = {"csat": (before, csat)}
    bump_version(ticket, changes)
    await session.flush()
    emit(session, workspace_id, "ticket.updated", await _read_one(session, ticket), changes=changes)


# What the worker does


async def announce_due_breaches(session: AsyncSession, now: datetime, limit: int = 200) -> int:
    """Find tickets past a due time whose breach nobody has announced, in every workspace, and
    announce them; how many breaches. Tickets another worker holds are left to it."""
    tickets = await TicketRepository(session).due_for_breach(now, limit)
    announced = 0
    for ticket in tickets:
        announced += await _announce_breaches(session, ticket, now)
    return announced


# When what a ticket points at is deleted


@on_delete("company")
async def _unlink_deleted_company(
    session: AsyncSession, workspace_id: uuid.UUID, company_id: uuid.UUID
) -> None:
    await _unlink(session, workspace_id, "company_id", company_id)


@on_delete("team")
async def _unlink_deleted_team(
    session: AsyncSession, workspace_id: uuid.UUID, team_id: uuid.UUID
) -> None:
    await _unlink(session, workspace_id, "team_id", team_id)


async def _unlink(
    session: AsyncSession, workspace_id: uuid.UUID, field: str, value: uuid.UUID
) -> None:
    tickets = await TicketRepository(session).unlink(workspace_id, field, value)
    for read in await read_tickets(session, tickets):
        emit(session, workspace_id, "ticket.updated", read, changes={field: (value, None)})


# Nothing points at a merged contact: its records follow it to the one it was merged into.
repoint_on_merge("contact", "tickets", Ticket, "contact_id")
repoint_on_merge("contact", "ticket_comments", TicketComment, "author_contact_id")
