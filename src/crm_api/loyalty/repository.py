import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from crm_api.contacts.models import Contact, ContactMetrics
from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository
from crm_api.feedback.models import Feedback
from crm_api.loyalty.models import LoyaltyAccount, LoyaltyBadgeAward, LoyaltyEntry, LoyaltyProgram
from crm_api.loyalty.schemas import LoyaltyEntryListParams
from crm_api.webhooks.models import EventCounter

ENTRY_ID_SORT = SortField(LoyaltyEntry.id, uuid.UUID)
ENTRY_SORTS = {"created_at": SortField(LoyaltyEntry.created_at, datetime)}
# Entries that spend points: what the oldest lots are used up by.
SPENDING = or_(
    LoyaltyEntry.kind.in_(("redeem", "expire")),
    and_(LoyaltyEntry.kind == "adjust", LoyaltyEntry.points < 0),
)


class LoyaltyEntryRepository(Repository[LoyaltyEntry]):
    model = LoyaltyEntry
    gone_column = None

    def list_filters(
        self, contact_id: uuid.UUID, params: LoyaltyEntryListParams
    ) -> list[ColumnElement[bool]]:
        where = [LoyaltyEntry.contact_id == contact_id]
        if params.kind is not None:
            where.append(LoyaltyEntry.kind == params.kind.value)
        return where

    async def unreversed_earnings(
        self, workspace_id: uuid.UUID, source_type: str, source_id: uuid.UUID
    ) -> list[LoyaltyEntry]:
        reversal = aliased(LoyaltyEntry)
        statement = (
            select(LoyaltyEntry)
            .outerjoin(
                reversal,
                and_(
                    reversal.workspace_id == LoyaltyEntry.workspace_id,
                    reversal.reverses_id == LoyaltyEntry.id,
                ),
            )
            .where(
                LoyaltyEntry.workspace_id == workspace_id,
                LoyaltyEntry.source_type == source_type,
                LoyaltyEntry.source_id == source_id,
                LoyaltyEntry.kind == "earn",
                reversal.id.is_(None),
            )
            .order_by(LoyaltyEntry.id)
        )
        return list((await self.session.execute(statement)).scalars())

    async def earned(
        self, workspace_id: uuid.UUID, rule_key: str, source_type: str, source_id: uuid.UUID
    ) -> bool:
        statement = select(LoyaltyEntry.id).where(
            LoyaltyEntry.workspace_id == workspace_id,
            LoyaltyEntry.kind == "earn",
            LoyaltyEntry.rule_key == rule_key,
            LoyaltyEntry.source_type == source_type,
            LoyaltyEntry.source_id == source_id,
        )
        return (await self.session.execute(statement)).first() is not None

    async def tier_points(
        self, workspace_id: uuid.UUID, contact_id: uuid.UUID, since: datetime
    ) -> tuple[int, datetime | None]:
        """Points earned after `since`, and the earliest time one of them was earned."""
        statement = select(
            func.coalesce(func.sum(LoyaltyEntry.points), 0), func.min(LoyaltyEntry.earned_at)
        ).where(
            LoyaltyEntry.workspace_id == workspace_id,
            LoyaltyEntry.contact_id == contact_id,
            LoyaltyEntry.earned_at > since,
        )
        points, earliest = (await self.session.execute(statement)).one()
        return int(points), earliest

    async def expiry_standing(
        self, workspace_id: uuid.UUID, contact_id: uuid.UUID, at: datetime
    ) -> tuple[int, int, datetime | None]:
        """Points of lots expiring by `at` (net of their reversals), points spent so far, and
        when the next lot after `at` expires. Spending uses up the oldest lots first."""
        lot = aliased(LoyaltyEntry)
        expiring_at = func.coalesce(LoyaltyEntry.expires_at, lot.expires_at)
        statement = (
            select(
                func.coalesce(
                    func.sum(LoyaltyEntry.points).filter(
                        LoyaltyEntry.kind.in_(("earn", "adjust", "reverse")), expiring_at <= at
                    ),
                    0,
                ),
                func.coalesce(-func.sum(LoyaltyEntry.points).filter(SPENDING), 0),
                func.min(LoyaltyEntry.expires_at).filter(LoyaltyEntry.expires_at > at),
            )
            .select_from(LoyaltyEntry)
            .outerjoin(
                lot,
                and_(
                    lot.workspace_id == LoyaltyEntry.workspace_id,
                    lot.id == LoyaltyEntry.reverses_id,
                ),
            )
            .where(LoyaltyEntry.workspace_id == workspace_id, LoyaltyEntry.contact_id == contact_id)
        )
        due, spent, next_at = (await self.session.execute(statement)).one()
        return int(due), int(spent), next_at

    async def contacts_with_entries(
        self, workspace_id: uuid.UUID, contact_ids: Sequence[uuid.UUID]
    ) -> list[uuid.UUID]:
        statement = (
            select(LoyaltyEntry.contact_id)
            .where(
                LoyaltyEntry.workspace_id == workspace_id,
                LoyaltyEntry.contact_id.in_(contact_ids),
            )
            .distinct()
        )
        return list((await self.session.execute(statement)).scalars())


class LoyaltyRepository:
    """Programs, accounts, badges and the events the rules are applied to."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def programs_behind(self, limit: int) -> list[tuple[LoyaltyProgram, int]]:
        """Enabled programs with events they have not seen, locked (others' left to them),
        each with the workspace's last event sequence."""
        statement = (
            select(LoyaltyProgram, EventCounter.last_sequence)
            .join(EventCounter, EventCounter.workspace_id == LoyaltyProgram.workspace_id)
            .where(
                LoyaltyProgram.enabled, EventCounter.last_sequence > LoyaltyProgram.event_sequence
            )
            .order_by(LoyaltyProgram.workspace_id)
            .limit(limit)
            .with_for_update(of=LoyaltyProgram, skip_locked=True)
        )
        return [(row[0], int(row[1])) for row in (await self.session.execute(statement)).all()]

    async def account(
        self, workspace_id: uuid.UUID, contact_id: uuid.UUID
    ) -> LoyaltyAccount | None:
        return await self.session.get(LoyaltyAccount, (workspace_id, contact_id))

    async def lock_account(self, workspace_id: uuid.UUID, contact_id: uuid.UUID) -> LoyaltyAccount:
        """The contact's account, made if it has none, locked until the transaction ends."""
        await self.session.execute(
            insert(LoyaltyAccount)
            .values(workspace_id=workspace_id, contact_id=contact_id)
            .on_conflict_do_nothing()
        )
        statement = (
            select(LoyaltyAccount)
            .where(
                LoyaltyAccount.workspace_id == workspace_id,
                LoyaltyAccount.contact_id == contact_id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(statement)).scalar_one()

    async def accounts_due(self, column: str, now: datetime, limit: int) -> list[LoyaltyAccount]:
        """Accounts whose `next_expiry_at` or `next_tier_review_at` has come, locked."""
        due = getattr(LoyaltyAccount, column)
        statement = (
            select(LoyaltyAccount)
            .where(due <= now)
            .order_by(due)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.execute(statement)).scalars())

    async def review_all_tiers(self, workspace_id: uuid.UUID, now: datetime) -> None:
        """Tiers changed: every account of the workspace is looked at again."""
        await self.session.execute(
            update(LoyaltyAccount)
            .where(LoyaltyAccount.workspace_id == workspace_id)
            .values(next_tier_review_at=now)
        )

    async def badges_of(
        self, workspace_id: uuid.UUID, contact_ids: Sequence[uuid.UUID]
    ) -> list[LoyaltyBadgeAward]:
        statement = (
            select(LoyaltyBadgeAward)
            .where(
                LoyaltyBadgeAward.workspace_id == workspace_id,
                LoyaltyBadgeAward.contact_id.in_(contact_ids),
            )
            .order_by(LoyaltyBadgeAward.awarded_at, LoyaltyBadgeAward.badge_key)
        )
        return list((await self.session.execute(statement)).scalars())

    async def award(
        self, workspace_id: uuid.UUID, contact_id: uuid.UUID, badges: Sequence[tuple[str, str]]
    ) -> list[LoyaltyBadgeAward]:
        """Award these (key, name) badges the contact lacks; the awards made."""
        if not badges:
            return []
        statement = (
            insert(LoyaltyBadgeAward)
            .values(
                [
                    {
                        "workspace_id": workspace_id,
                        "contact_id": contact_id,
                        "badge_key": k,
                        "name": n,
                    }
                    for k, n in badges
                ]
            )
            .on_conflict_do_nothing()
            .returning(LoyaltyBadgeAward)
        )
        return list((await self.session.execute(statement)).scalars())

    async def counts(self, workspace_id: uuid.UUID, contact_id: uuid.UUID) -> dict[str, int]:
        """What badges count, for one contact."""
        paid_orders = (
            select(ContactMetrics.order_count)
            .where(
                ContactMetrics.workspace_id == workspace_id,
                ContactMetrics.contact_id == contact_id,
            )
            .scalar_subquery()
        )
        feedback = (
            select(func.count())
            .where(
                Feedback.workspace_id == workspace_id,
                Feedback.contact_id == contact_id,
                Feedback.deleted_at.is_(None),
            )
            .scalar_subquery()
        )
        referrals = (
            select(func.count())
            .where(
                Contact.workspace_id == workspace_id,
                Contact.referred_by_id == contact_id,
                Contact.deleted_at.is_(None),
            )
            .scalar_subquery()
        )
        row = (await self.session.execute(select(paid_orders, feedback, referrals))).one()
        return {
            "paid_orders": int(row[0] or 0),
            "feedback_given": int(row[1] or 0),
            "referrals": int(row[2] or 0),
        }

    async def leaderboard(
        self, workspace_id: uuid.UUID, since: datetime | None, tier: str | None, limit: int
    ) -> list[dict[str, Any]]:
        if since is None:
            points: Any = LoyaltyAccount.lifetime_points
            ranked = select(LoyaltyAccount.contact_id, points.label("points")).where(
                LoyaltyAccount.workspace_id == workspace_id, LoyaltyAccount.lifetime_points > 0
            )
        else:
            earned = func.sum(LoyaltyEntry.points)
            ranked = (
                select(LoyaltyEntry.contact_id, earned.label("points"))
                .where(LoyaltyEntry.workspace_id == workspace_id, LoyaltyEntry.earned_at > since)
                .group_by(LoyaltyEntry.contact_id)
                .having(earned > 0)
            )
        scores = ranked.subquery()
        statement = (
            select(
                func.rank().over(order_by=scores.c.points.desc()).label("rank"),
                scores.c.contact_id,
                Contact.first_name,
                Contact.last_name,
                scores.c.points,
                LoyaltyAccount.tier_key,
            )
            .join(
                Contact,
                and_(Contact.workspace_id == workspace_id, Contact.id == scores.c.contact_id),
            )
            .join(
                LoyaltyAccount,
                and_(
                    LoyaltyAccount.workspace_id == workspace_id,
                    LoyaltyAccount.contact_id == scores.c.contact_id,
                ),
            )
            .where(Contact.deleted_at.is_(None))
            .order_by(scores.c.points.desc(), scores.c.contact_id)
            .limit(limit)
        )
        if tier is not None:
            statement = statement.where(LoyaltyAccount.tier_key == tier)
        return [dict(row._mapping) for row in await self.session.execute(statement)]

    async def move_accounts(
        self, workspace_id: uuid.UUID, from_ids: Sequence[uuid.UUID], to_id: uuid.UUID
    ) -> int:
        """A merge: the merged contacts' entries and badges go to the one they were merged
        into (a badge it has already stays as it was); their accounts go."""
        moved = await self.session.execute(
            update(LoyaltyEntry)
            .where(LoyaltyEntry.workspace_id == workspace_id, LoyaltyEntry.contact_id.in_(from_ids))
            .values(contact_id=to_id)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            text(
                "INSERT INTO loyalty_badge_awards (workspace_id, contact_id, badge_key, name, "
                "awarded_at) SELECT workspace_id, :to_id, badge_key, name, awarded_at "
                "FROM loyalty_badge_awards WHERE workspace_id = :workspace_id "
                "AND contact_id = ANY(:from_ids) ON CONFLICT DO NOTHING"
            ),
            {"workspace_id": workspace_id, "to_id": to_id, "from_ids": list(from_ids)},
        )
        for table in ("loyalty_badge_awards", "loyalty_accounts"):
            await self.session.execute(
                text(
                    f"DELETE FROM {table} WHERE workspace_id = :workspace_id "
                    "AND contact_id = ANY(:from_ids)"
                ),
                {"workspace_id": workspace_id, "from_ids": list(from_ids)},
            )
        return int(moved.rowcount or 0)  # type: ignore[attr-defined]

    async def sums(self, workspace_id: uuid.UUID, contact_id: uuid.UUID) -> tuple[int, int]:
        """The balance and lifetime points the contact's entries add up to."""
        statement = select(
            func.coalesce(func.sum(LoyaltyEntry.points), 0),
            func.coalesce(
                func.sum(case((LoyaltyEntry.earned_at.is_not(None), LoyaltyEntry.points), else_=0)),
                0,
            ),
        ).where(LoyaltyEntry.workspace_id == workspace_id, LoyaltyEntry.contact_id == contact_id)
        balance, lifetime = (await self.session.execute(statement)).one()
        return int(balance), int(lifetime)
