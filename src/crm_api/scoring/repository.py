import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.contacts.models import Contact, ContactMetrics
from crm_api.core.pagination import SortField
from crm_api.core.repository import Repository
from crm_api.deals.models import Deal, DealContact
from crm_api.interactions.models import Interaction
from crm_api.scoring.models import LeadScoreModel, LeadScoring
from crm_api.webhooks.models import EventCounter

MODEL_ID_SORT = SortField(LeadScoreModel.id, uuid.UUID)
MODEL_SORTS = {"created_at": SortField(LeadScoreModel.created_at, datetime)}
# Activity features look this far back (days since the last interaction are held to it).
LOOKBACK_DAYS = 365
RECENT_DAYS = 90
IDS = bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))
SCORE_COLUMNS = ("lead_score", "lead_score_factors", "lead_score_model_id", "lead_scored_at")
AS_OF = bindparam("as_of", type_=ARRAY(DateTime(timezone=True)))


class LeadScoreModelRepository(Repository[LeadScoreModel]):
    model = LeadScoreModel
    gone_column = None


class LeadScoringRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def configs_due(
        self, pass_due_before: datetime, limit: int
    ) -> list[tuple[LeadScoring, int]]:
        """Enabled set-ups with events they have not looked at or a pass over every contact
        due, locked (others' left to them), each with the workspace's last event sequence."""
        statement = (
            select(LeadScoring, EventCounter.last_sequence)
            .outerjoin(EventCounter, EventCounter.workspace_id == LeadScoring.workspace_id)
            .where(
                LeadScoring.enabled,
                or_(
                    func.coalesce(EventCounter.last_sequence, 0) > LeadScoring.event_sequence,
                    LeadScoring.rescored_at.is_(None),
                    LeadScoring.rescored_at < pass_due_before,
                ),
            )
            .order_by(LeadScoring.workspace_id)
            .limit(limit)
            .with_for_update(of=LeadScoring, skip_locked=True)
        )
        rows = (await self.session.execute(statement)).all()
        return [(row[0], int(row[1] or 0)) for row in rows]

    async def contacts_after(
        self, workspace_id: uuid.UUID, after_id: uuid.UUID | None, limit: int
    ) -> list[uuid.UUID]:
        """Live contacts in id order: the next page of a pass over all of them."""
        statement = select(Contact.id).where(
            Contact.workspace_id == workspace_id, Contact.deleted_at.is_(None)
        )
        if after_id is not None:
            statement = statement.where(Contact.id > after_id)
        statement = statement.order_by(Contact.id).limit(limit)
        return list((await self.session.execute(statement)).scalars())

    async def contacts_of_companies(
        self, workspace_id: uuid.UUID, company_ids: Sequence[uuid.UUID]
    ) -> list[uuid.UUID]:
        statement = select(Contact.id).where(
            Contact.workspace_id == workspace_id,
            Contact.company_id.in_(company_ids),
            Contact.deleted_at.is_(None),
        )
        return list((await self.session.execute(statement)).scalars())

    async def feature_rows(
        self,
        workspace_id: uuid.UUID,
        targets: Sequence[tuple[uuid.UUID, datetime]],
        fit_conditions: Sequence[ColumnElement[bool]],
        engagement_rules: Sequence[dict[str, Any]],
    ) -> list[RowMapping]:
        """Per live contact, as of its own time: `fit_<i>` 1/0 for each condition, and from its
        interactions up to then `engagement_<i>` (each rule's count in its window),
        `interactions_recent` (in 90 days), `last_interaction_at` (within a year), and whether it
        has a company, phone and email. One statement: an index range scan of each contact's
        interactions."""
        if not targets:
            return []
        # The pairs as a table: unnest(ids, as_of) AS wanted(contact_id, as_of).
        pairs = func.unnest(IDS, AS_OF).table_valued("contact_id", "as_of")
        wanted = pairs.render_derived("wanted")
        as_of = wanted.c.as_of

        def since(days: int) -> ColumnElement[bool]:
            return Interaction.occurred_at > as_of - timedelta(days=days)

        counts = [func.count().filter(since(RECENT_DAYS)).label("interactions_recent")]
        for index, rule in enumerate(engagement_rules):
            conditions = [since(rule["within_days"])]
            if rule.get("channels"):
                conditions.append(Interaction.channel.in_(rule["channels"]))
            if rule.get("direction"):
                conditions.append(Interaction.direction == rule["direction"])
            counts.append(func.count().filter(and_(*conditions)).label(f"engagement_{index}"))
        activity = (
            select(*counts, func.max(Interaction.occurred_at).label("last_interaction_at"))
            .where(
                Interaction.workspace_id == workspace_id,
                Interaction.contact_id == Contact.id,
                Interaction.deleted_at.is_(None),
                Interaction.occurred_at <= as_of,
                since(LOOKBACK_DAYS),
            )
            .lateral("activity")
        )
        statement = (
            select(
                Contact.id.label("contact_id"),
                as_of,
                *(
                    case((condition, 1), else_=0).label(f"fit_{index}")
                    for index, condition in enumerate(fit_conditions)
                ),
                activity,
                Contact.company_id.is_not(None).cast(Integer).label("has_company"),
                Contact.phone.is_not(None).cast(Integer).label("has_phone"),
                Contact.email.is_not(None).cast(Integer).label("has_email"),
            )
            .select_from(wanted)
            .join(
                Contact,
                and_(
                    Contact.workspace_id == workspace_id,
                    Contact.id == wanted.c.contact_id,
                    Contact.deleted_at.is_(None),
                ),
            )
            .join(activity, true())
            .order_by(Contact.id)
        )
        parameters = {"ids": [t[0] for t in targets], "as_of": [t[1] for t in targets]}
        return list((await self.session.execute(statement, parameters)).mappings())

    async def training_targets(
        self, workspace_id: uuid.UUID
    ) -> list[tuple[uuid.UUID, bool, datetime]]:
        """Live contacts of closed deals: (contact, whether any deal was won, when it was
        decided: the first win, else the last loss)."""
        decided_at = func.coalesce(Deal.closed_at, Deal.updated_at)
        won = func.bool_or(Deal.status == "won")
        statement = (
            select(
                DealContact.contact_id,
                won,
                func.coalesce(
                    func.min(decided_at).filter(Deal.status == "won"), func.max(decided_at)
                ),
            )
            .join(
                Deal,
                and_(Deal.workspace_id == DealContact.workspace_id, Deal.id == DealContact.deal_id),
            )
            .join(
                Contact,
                and_(
                    Contact.workspace_id == DealContact.workspace_id,
                    Contact.id == DealContact.contact_id,
                    Contact.deleted_at.is_(None),
                ),
            )
            .where(
                DealContact.workspace_id == workspace_id,
                Deal.deleted_at.is_(None),
                Deal.status.in_(("won", "lost")),
            )
            .group_by(DealContact.contact_id)
            .order_by(DealContact.contact_id)
        )
        rows = (await self.session.execute(statement)).all()
        return [(row[0], bool(row[1]), row[2]) for row in rows]

    async def scores_of(
        self, workspace_id: uuid.UUID, contact_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, int | None]:
        statement = select(ContactMetrics.contact_id, ContactMetrics.lead_score).where(
            ContactMetrics.workspace_id == workspace_id, ContactMetrics.contact_id.in_(contact_ids)
        )
        return {row[0]: row[1] for row in (await self.session.execute(statement)).all()}

    async def save_scores(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert each contact's lead score (its other metrics stay as they are)."""
        if not rows:
            return
        statement = insert(ContactMetrics)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["workspace_id", "contact_id"],
                set_={column: statement.excluded[column] for column in SCORE_COLUMNS},
            ),
            list(rows),
        )
