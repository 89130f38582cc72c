"""The loyalty program: its set-up, the points ledger and its rules (every movement is an entry;
an account holds what they add up to, changed only under its row lock), redemptions, tiers over
a rolling window, badges and the leaderboard. Earning rules run in the worker over the event
feed (loyalty/earning.py); expiry and tier downgrades are periodic tasks here."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.contacts.repository import ContactRepository
from crm_api.core.auth import Principal
from crm_api.core.db import new_id
from crm_api.core.documents import document_of, document_or_404, put_document
from crm_api.core.errors import Conflict
from crm_api.core.hooks import on_merge
from crm_api.core.patch import Changes
from crm_api.core.records import get_or_404, list_records
from crm_api.loyalty.models import LoyaltyAccount, LoyaltyEntry, LoyaltyProgram
from crm_api.loyalty.repository import (
    ENTRY_ID_SORT,
    ENTRY_SORTS,
    LoyaltyEntryRepository,
    LoyaltyRepository,
)
from crm_api.loyalty.schemas import (
    AdjustmentCreate,
    BadgeAwardRead,
    Expiry,
    Leaderboard,
    LeaderboardParams,
    LeaderboardRow,
    LoyaltyAccountRead,
    LoyaltyEntryListParams,
    LoyaltyEntryRead,
    LoyaltyProgramInput,
    LoyaltyProgramRead,
    NextTier,
    RedemptionCreate,
    TierRead,
)
from crm_api.webhooks.events import emit
from crm_api.webhooks.repository import EventRepository

DEFAULT_TIER_WINDOW_DAYS = 365
PROGRAM_FIELDS = (
    "name",
    "enabled",
    "points_expire_after_days",
    "tier_window_days",
    "rules",
    "tiers",
    "badges",
)


class InsufficientPoints(Conflict):
    slug, title = "insufficient-points", "Insufficient points"


# The program


async def get_program(session: AsyncSession, principal: Principal) -> LoyaltyProgram:
    return await document_or_404(
        session, LoyaltyProgram, principal.workspace_id,
        "This workspace has no loyalty program yet: PUT /v1/loyalty/program.",
    )  # fmt: skip


async def put_program(
    session: AsyncSession, principal: Principal, data: LoyaltyProgramInput, if_match: str | None
) -> tuple[LoyaltyProgram, bool]:
    """Create or replace the program; (program, whether it was created). Earning starts with
    the events after it is stored, and again after it is re-enabled."""
    data.check_unique()
    workspace_id = principal.workspace_id
    values: dict[str, Any] = data.model_dump(mode="json", include=set(PROGRAM_FIELDS))
    values["tiers"] = sorted(values["tiers"], key=lambda tier: tier["min_points"])
    feed = EventRepository(session)
    program, created, changes = await put_document(
        session, LoyaltyProgram, workspace_id, values, if_match,
        event_sequence=await feed.last_sequence(workspace_id),
    )  # fmt: skip
    if created:
        _announce_program(session, "created", program)
        return program, True
    if not changes:
        return program, False
    if "enabled" in changes and program.enabled:
        program.event_sequence = await feed.last_sequence(workspace_id)
    if "tiers" in changes or "tier_window_days" in changes:
        await LoyaltyRepository(session).review_all_tiers(workspace_id, datetime.now(UTC))
    await session.flush()
    _announce_program(session, "updated", program, changes)
    return program, False


def _announce_program(
    session: AsyncSession, action: str, program: LoyaltyProgram, changes: Changes | None = None
) -> None:
    data = LoyaltyProgramRead.model_validate(program)
    emit(
        session,
        program.workspace_id,
        f"loyalty_program.{action}",
        data,
        changes=changes,
        resource_id=program.workspace_id,
    )


# The ledger


def _tier_for(program: LoyaltyProgram | None, points: int) -> dict[str, Any] | None:
    reached = [t for t in (program.tiers if program else []) if t["min_points"] <= points]
    return reached[-1] if reached else None


def _window(program: LoyaltyProgram | None) -> timedelta:
    return timedelta(days=program.tier_window_days if program else DEFAULT_TIER_WINDOW_DAYS)


async def post_entry(
    session: AsyncSession,
    program: LoyaltyProgram | None,
    account: LoyaltyAccount,
    now: datetime,
    *,
    kind: str,
    points: int,
    reason: str,
    **fields: Any,
) -> LoyaltyEntry:
    """Add an entry to a locked account and keep the account and its tier in step (badges are
    the caller's to award, once its entries are made)."""
    entry = LoyaltyEntry(
        id=new_id(),
        workspace_id=account.workspace_id,
        contact_id=account.contact_id,
        kind=kind,
        points=points,
        balance_after=account.balance + points,
        reason=reason,
        **fields,
    )
    session.add(entry)
    account.balance = entry.balance_after
    if entry.earned_at is not None:
        account.lifetime_points += points
    if entry.expires_at is not None and (
        account.next_expiry_at is None or entry.expires_at < account.next_expiry_at
    ):
        account.next_expiry_at = entry.expires_at
    account.version += 1
    account.updated_at = now
    await session.flush()
    emit(
        session,
        account.workspace_id,
        "loyalty_entry.created",
        LoyaltyEntryRead.model_validate(entry),
    )
    if entry.earned_at is not None:
        await review_tier(session, program, account, now)
    return entry


async def review_tier(
    session: AsyncSession, program: LoyaltyProgram | None, account: LoyaltyAccount, now: datetime
) -> None:
    """Put the account in the tier its points within the window reach, announcing a change,
    and note when points next leave the window (when it may fall)."""
    window = _window(program)
    points, earliest = await LoyaltyEntryRepository(session).tier_points(
        account.workspace_id, account.contact_id, now - window
    )
    tier = _tier_for(program, points)
    key = tier["key"] if tier else None
    holds_tier = key is not None
    account.next_tier_review_at = earliest + window if holds_tier and earliest else None
    old_key = account.tier_key
    if key == old_key:
        return
    tiers = {t["key"]: t for t in (program.tiers if program else [])}
    old_min = tiers[old_key]["min_points"] if old_key in tiers else -1
    upgraded = tier is not None and tier["min_points"] > old_min
    account.tier_key = key
    account.tier_changed_at = now
    account.version += 1
    await session.flush()
    read = await _account_read(session, program, account, now)
    action = "tier_upgraded" if upgraded else "tier_downgraded"
    emit(
        session,
        account.workspace_id,
        f"loyalty_account.{action}",
        read,
        changes={"tier_key": (old_key, key)},
        resource_id=account.contact_id,
    )


async def award_badges(
    session: AsyncSession, program: LoyaltyProgram | None, account: LoyaltyAccount
) -> None:
    """Award the badges whose milestone the contact has reached, each once, announced."""
    if program is None or not program.badges:
        return
    repository = LoyaltyRepository(session)
    held = {
        a.badge_key for a in await repository.badges_of(account.workspace_id, [account.contact_id])
    }
    wanted = [b for b in program.badges if b["key"] not in held]
    if not wanted:
        return
    counts: dict[str, int] = {"lifetime_points": account.lifetime_points}
    if any(b["criterion"] != "lifetime_points" for b in wanted):
        counts |= await repository.counts(account.workspace_id, account.contact_id)
    reached = [(b["key"], b["name"]) for b in wanted if counts[b["criterion"]] >= b["threshold"]]
    for award in await repository.award(account.workspace_id, account.contact_id, reached):
        emit(
            session,
            account.workspace_id,
            "loyalty_account.badge_awarded",
            BadgeAwardRead.model_validate(award),
            resource_id=account.contact_id,
        )


async def _locked_account(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID
) -> LoyaltyAccount:
    await get_or_404(ContactRepository(session), principal.workspace_id, contact_id, "contact")
    return await LoyaltyRepository(session).lock_account(principal.workspace_id, contact_id)


def _spend_check(account: LoyaltyAccount, points: int) -> None:
    if account.balance < points:
        raise InsufficientPoints(
            f"The balance is {account.balance} points; {points} cannot be taken.",
            balance=account.balance,
            requested=points,
        )


async def redeem_points(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID, data: RedemptionCreate
) -> LoyaltyEntry:
    """Spend points; 409 when the balance is short. Concurrent redemptions queue on the
    account's row lock, so the balance never goes below what was there."""
    account = await _locked_account(session, principal, contact_id)
    _spend_check(account, data.points)
    program = await document_of(session, LoyaltyProgram, principal.workspace_id)
    return await post_entry(
        session, program, account, datetime.now(UTC),
        kind="redeem", points=-data.points, reason=data.reason, reference=data.reference,
        api_key_id=principal.api_key_id, user_id=principal.user_id,
    )  # fmt: skip


async def adjust_points(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID, data: AdjustmentCreate
) -> LoyaltyEntry:
    """Add or take points by hand; they count as earned (lifetime, tiers) and expire like any."""
    account = await _locked_account(session, principal, contact_id)
    if data.points < 0:
        _spend_check(account, -data.points)
    program = await document_of(session, LoyaltyProgram, principal.workspace_id)
    now = datetime.now(UTC)
    expires_at = None
    if data.points > 0 and program is not None and program.points_expire_after_days:
        expires_at = now + timedelta(days=program.points_expire_after_days)
    entry = await post_entry(
        session, program, account, now,
        kind="adjust", points=data.points, reason=data.reason, reference=data.reference,
        earned_at=now, expires_at=expires_at,
        api_key_id=principal.api_key_id, user_id=principal.user_id,
    )  # fmt: skip
    await award_badges(session, program, account)
    return entry


async def list_entries(
    session: AsyncSession,
    principal: Principal,
    contact_id: uuid.UUID,
    params: LoyaltyEntryListParams,
) -> tuple[list[LoyaltyEntry], str | None]:
    await get_or_404(ContactRepository(session), principal.workspace_id, contact_id, "contact")
    repository = LoyaltyEntryRepository(session)
    return await list_records(
        repository, principal.workspace_id, params, repository.list_filters(contact_id, params),
        ENTRY_SORTS, ENTRY_ID_SORT, default_sort="-created_at",
    )  # fmt: skip


# Reading accounts


async def _account_read(
    session: AsyncSession,
    program: LoyaltyProgram | None,
    account: LoyaltyAccount | None,
    now: datetime,
    contact_id: uuid.UUID | None = None,
) -> LoyaltyAccountRead:
    if account is None:
        assert contact_id is not None
        return LoyaltyAccountRead(
            contact_id=contact_id, balance=0, lifetime_points=0, tier_points=0, tier=None,
            tier_changed_at=None, next_tier=None, next_expiry=None, badges=[],
        )  # fmt: skip
    entries = LoyaltyEntryRepository(session)
    workspace_id, contact_id = account.workspace_id, account.contact_id
    points, _ = await entries.tier_points(workspace_id, contact_id, now - _window(program))
    tiers = {t["key"]: t for t in (program.tiers if program else [])}
    tier = tiers.get(account.tier_key or "")
    higher = [t for t in tiers.values() if t["min_points"] > (tier["min_points"] if tier else -1)]
    next_tier = None
    if higher:
        target = min(higher, key=lambda t: t["min_points"])
        next_tier = NextTier(**target, points_needed=max(0, target["min_points"] - points))
    next_expiry = None
    if account.next_expiry_at is not None:
        due, spent, _ = await entries.expiry_standing(
            workspace_id, contact_id, account.next_expiry_at
        )
        if due > spent:
            next_expiry = Expiry(expires_at=account.next_expiry_at, points=due - spent)
    badges = await LoyaltyRepository(session).badges_of(workspace_id, [contact_id])
    return LoyaltyAccountRead(
        contact_id=contact_id,
        balance=account.balance,
        lifetime_points=account.lifetime_points,
        tier_points=points,
        tier=TierRead(**tier) if tier else None,
        tier_changed_at=account.tier_changed_at,
        next_tier=next_tier,
        next_expiry=next_expiry,
        badges=[BadgeAwardRead.model_validate(b) for b in badges],
    )


async def get_account(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID
) -> LoyaltyAccountRead:
    await get_or_404(ContactRepository(session), principal.workspace_id, contact_id, "contact")
    repository = LoyaltyRepository(session)
    program = await document_of(session, LoyaltyProgram, principal.workspace_id)
    account = await repository.account(principal.workspace_id, contact_id)
    return await _account_read(session, program, account, datetime.now(UTC), contact_id)


async def get_leaderboard(
    session: AsyncSession, principal: Principal, params: LeaderboardParams
) -> Leaderboard:
    since = None
    if params.days is not None:
        since = datetime.now(UTC) - timedelta(days=params.days)
    rows = await LoyaltyRepository(session).leaderboard(
        principal.workspace_id, since, params.tier, params.limit
    )
    return Leaderboard(since=since, data=[LeaderboardRow(**row) for row in rows])


# Periodic: expiry and tier reviews


async def expire_points(session: AsyncSession, now: datetime, limit: int = 200) -> int:
    """Expire the points whose time has come (oldest spent first), in every workspace; how many
    accounts were looked at."""
    repository = LoyaltyRepository(session)
    entries = LoyaltyEntryRepository(session)
    accounts = await repository.accounts_due("next_expiry_at", now, limit)
    for account in accounts:
        due, spent, next_at = await entries.expiry_standing(
            account.workspace_id, account.contact_id, now
        )
        if due > spent:
            await post_entry(
                session, None, account, now, kind="expire", points=spent - due,
                reason="Points expired",
            )  # fmt: skip
        account.next_expiry_at = next_at
    return len(accounts)


async def review_due_tiers(session: AsyncSession, now: datetime, limit: int = 200) -> int:
    """Accounts whose points are leaving the tier window (or whose program's tiers changed):
    their tier again, in every workspace; how many were looked at."""
    repository = LoyaltyRepository(session)
    accounts = await repository.accounts_due("next_tier_review_at", now, limit)
    programs: dict[uuid.UUID, LoyaltyProgram | None] = {}
    for account in accounts:
        if account.workspace_id not in programs:
            programs[account.workspace_id] = await document_of(
                session, LoyaltyProgram, account.workspace_id
            )
        await review_tier(session, programs[account.workspace_id], account, now)
    return len(accounts)


@on_merge("contact", "loyalty_entries")
async def _move_to_survivor(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    merged_ids: Sequence[uuid.UUID],
    survivor_id: uuid.UUID,
) -> int:
    """The merged contacts' points, history and badges become the survivor's."""
    repository = LoyaltyRepository(session)
    if not await LoyaltyEntryRepository(session).contacts_with_entries(workspace_id, merged_ids):
        return 0
    account = await repository.lock_account(workspace_id, survivor_id)
    moved = await repository.move_accounts(workspace_id, merged_ids, survivor_id)
    account.balance, account.lifetime_points = await repository.sums(workspace_id, survivor_id)
    # The periodic tasks work out the survivor's next expiry and its tier.
    account.next_expiry_at = account.next_tier_review_at = datetime.now(UTC)
    account.version += 1
    return moved
