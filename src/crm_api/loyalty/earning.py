"""Earning rules, applied by the worker to each workspace's event feed in order: an order paid,
a survey answer given, a profile completed or a referral earns; an order refunded, cancelled or
deleted (or an answer deleted) takes back what it earned. Each program remembers the last event
it applied, in the transaction that applies the next ones, and a rule earns at most once per
source (a unique index), so every event counts exactly once, however many workers run."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.contacts.repository import ContactRepository
from crm_api.loyalty.models import LoyaltyProgram
from crm_api.loyalty.repository import LoyaltyEntryRepository, LoyaltyRepository
from crm_api.loyalty.schemas import DEFAULT_PROFILE_FIELDS
from crm_api.loyalty.service import award_badges, post_entry
from crm_api.webhooks.models import Event
from crm_api.webhooks.repository import EventRepository

# The events rules are applied to; at most this many per program per transaction.
EVENT_TYPES = (
    "order.created",
    "order.updated",
    "order.deleted",
    "feedback.created",
    "feedback.deleted",
    "contact.created",
    "contact.updated",
)
BATCH = 500
UNDONE = {"refunded": "Order refunded", "cancelled": "Order cancelled"}


async def apply_earning_rules(session: AsyncSession, now: datetime, limit: int = 20) -> int:
    """Apply the rules of programs behind their workspace's feed; how many programs moved on."""
    repository = LoyaltyRepository(session)
    behind = await repository.programs_behind(limit)
    for program, last_sequence in behind:
        through = min(last_sequence, program.event_sequence + BATCH)
        events = await EventRepository(session).between(
            program.workspace_id, program.event_sequence, through, EVENT_TYPES
        )
        for event in events:
            await _apply(session, program, event, now)
        program.event_sequence = through
    await session.flush()
    return len(behind)


async def _apply(
    session: AsyncSession, program: LoyaltyProgram, event: Event, now: datetime
) -> None:
    resource, _, action = event.type.partition(".")
    data, changes = event.data, event.changes or {}
    status_change = changes.get("status")
    if resource == "order":
        became_paid = data["status"] == "paid" and (
            action == "created" or (status_change is not None and status_change["old"] != "paid")
        )
        if became_paid:
            await _earn_for_order(session, program, event)
        elif action == "deleted":
            await _take_back(session, program, event, "order", "Order deleted", now)
        elif status_change is not None and data["status"] in UNDONE:
            await _take_back(session, program, event, "order", UNDONE[data["status"]], now)
    elif resource == "feedback":
        if action == "created":
            rules = [
                r for r in _rules(program, "feedback_given")
                if r["feedback_kind"] in (None, data["kind"])
            ]  # fmt: skip
            await _earn(session, program, event, rules, data["contact_id"], "feedback", None)
        else:
            await _take_back(session, program, event, "feedback", "Response deleted", now)
    elif resource == "contact":
        complete = [
            r for r in _rules(program, "profile_completed")
            if all(data.get(f) for f in r["profile_fields"] or DEFAULT_PROFILE_FIELDS)
        ]  # fmt: skip
        await _earn(session, program, event, complete, data["id"], "contact", None)
        referrer = data.get("referred_by_id")
        referral_change = changes.get("referred_by_id")
        newly_referred = action == "created" or (
            referral_change is not None and referral_change["old"] is None
        )
        if referrer is not None and newly_referred:
            rules = _rules(program, "referral")
            await _earn(session, program, event, rules, referrer, "contact", None)


def _rules(program: LoyaltyProgram, trigger: str) -> list[dict[str, Any]]:
    return [r for r in program.rules if r["active"] and r["trigger"] == trigger]


async def _earn_for_order(session: AsyncSession, program: LoyaltyProgram, event: Event) -> None:
    order = event.data
    rules = [r for r in _rules(program, "order_paid") if r["currency"] in (None, order["currency"])]
    total = Decimal(order["total"])

    def points(rule: dict[str, Any]) -> int:
        per_unit = Decimal(rule["points_per_unit"] or "0")
        return int((total * per_unit).to_integral_value(ROUND_FLOOR)) + int(rule["points"])

    await _earn(session, program, event, rules, order["contact_id"], "order", points)


async def _earn(
    session: AsyncSession,
    program: LoyaltyProgram,
    event: Event,
    rules: list[dict[str, Any]],
    contact_id: str,
    source_type: str,
    points_of: Any,
) -> None:
    """Each rule's points for this source to the contact (followed to the one it was merged
    into; none for a deleted contact), once per rule and source."""
    if not rules:
        return
    workspace_id = program.workspace_id
    owner = await _live_contact(session, workspace_id, uuid.UUID(contact_id))
    if owner is None:
        return
    source_id = event.resource_id
    assert source_id is not None
    entries = LoyaltyEntryRepository(session)
    account = await LoyaltyRepository(session).lock_account(workspace_id, owner)
    earned_at = event.occurred_at
    expires_at = None
    if program.points_expire_after_days:
        expires_at = earned_at + timedelta(days=program.points_expire_after_days)
    for rule in rules:
        points = points_of(rule) if points_of else rule["points"]
        if points <= 0 or await entries.earned(workspace_id, rule["key"], source_type, source_id):
            continue
        await post_entry(
            session, program, account, datetime.now(UTC),
            kind="earn", points=points, reason=rule["name"], rule_key=rule["key"],
            source_type=source_type, source_id=source_id, event_id=event.id,
            earned_at=earned_at, expires_at=expires_at,
        )  # fmt: skip
    await award_badges(session, program, account)


async def _take_back(
    session: AsyncSession,
    program: LoyaltyProgram,
    event: Event,
    source_type: str,
    reason: str,
    now: datetime,
) -> None:
    """Reverse whatever this source earned and has not given back (the balance may go below
    zero: the points were already spent)."""
    assert event.resource_id is not None
    earnings = await LoyaltyEntryRepository(session).unreversed_earnings(
        program.workspace_id, source_type, event.resource_id
    )
    repository = LoyaltyRepository(session)
    for earning in earnings:
        account = await repository.lock_account(program.workspace_id, earning.contact_id)
        await post_entry(
            session, program, account, now,
            kind="reverse", points=-earning.points, reason=reason, rule_key=earning.rule_key,
            source_type=source_type, source_id=earning.source_id, event_id=event.id,
            reverses_id=earning.id, earned_at=earning.earned_at,
        )  # fmt: skip


async def _live_contact(
    session: AsyncSession, workspace_id: uuid.UUID, contact_id: uuid.UUID
) -> uuid.UUID | None:
    """The contact, or the one it was merged into (merges leave no chains); None if gone."""
    repository = ContactRepository(session)
    survivor = await repository.merged_into(workspace_id, contact_id)
    found = await repository.live_ids(workspace_id, [survivor or contact_id])
    return next(iter(found), None)
