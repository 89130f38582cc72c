import uuid
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Date, case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import selectinload

from crm_api.companies.repository import company_relation
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
from crm_api.deals.models import Deal, DealContact, DealStageChange, Pipeline, Stage
from crm_api.deals.schemas import DealListParams, ForecastGrouping, ForecastParams, StageKind

PIPELINE_ID_SORT = SortField(Pipeline.id, uuid.UUID)
PIPELINE_SORTS = {
    "created_at": SortField(Pipeline.created_at, datetime),
    "name": SortField(func.crm_fold(Pipeline.name), str),
}
DEAL_FILTERS = FilterFields(
    fields={
        **record_fields(Deal),
        "name": FilterField(Kind.text, Deal.name),
        "pipeline_id": FilterField(Kind.id, Deal.pipeline_id),
        "stage_id": FilterField(Kind.id, Deal.stage_id),
        "status": choice(Deal.status, StageKind),
        "amount": FilterField(Kind.number, Deal.amount),
        "currency": FilterField(Kind.text, Deal.currency),
        "expected_close_date": FilterField(Kind.date, Deal.expected_close_date),
        "owner_id": FilterField(Kind.id, Deal.owner_id),
        "company_id": FilterField(Kind.id, Deal.company_id),
        "source": FilterField(Kind.text, Deal.source),
        "lost_reason": FilterField(Kind.text, Deal.lost_reason),
        "stage_entered_at": FilterField(Kind.datetime, Deal.stage_entered_at),
        "closed_at": FilterField(Kind.datetime, Deal.closed_at),
    },
    relations={
        "company": company_relation(Deal),
    },
    custom_fields=Deal.custom_fields,
)
DEAL_ID_SORT = SortField(Deal.id, uuid.UUID)
DEAL_SORTS = {
    "created_at": SortField(Deal.created_at, datetime),
    "updated_at": SortField(Deal.updated_at, datetime),
    "name": SortField(func.crm_fold(Deal.name), str),
    # Deals without a date or amount sort as if last (date) or zero (amount).
    "expected_close_date": SortField(
        func.coalesce(Deal.expected_close_date, date(9999, 12, 31)), date
    ),
    "amount": SortField(func.coalesce(Deal.amount, 0), Decimal),
    "stage_entered_at": SortField(Deal.stage_entered_at, datetime),
}
STAGE_CHANGE_ID_SORT = SortField(DealStageChange.id, uuid.UUID)
STAGE_CHANGE_SORTS = {"changed_at": SortField(DealStageChange.created_at, datetime)}


class PipelineRepository(Repository[Pipeline]):
    model = Pipeline
    eager = (selectinload(Pipeline.stages),)

    async def default_id(self, workspace_id: uuid.UUID) -> uuid.UUID | None:
        """The workspace's default pipeline: its oldest."""
        statement = (
            select(Pipeline.id)
            .where(Pipeline.workspace_id == workspace_id, Pipeline.deleted_at.is_(None))
            .order_by(Pipeline.created_at, Pipeline.id)
            .limit(1)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()


class StageRepository(Repository[Stage]):
    model = Stage

    async def get_in_pipeline(
        self,
        workspace_id: uuid.UUID,
        pipeline_id: uuid.UUID,
        id: uuid.UUID,
        *,
        lock: str | None = None,
    ) -> Stage | None:
        statement = self.scoped(workspace_id).where(
            Stage.pipeline_id == pipeline_id, Stage.id == id
        )
        return await self._one(statement, lock)

    async def get_any(
        self, workspace_id: uuid.UUID, id: uuid.UUID, *, lock: str | None = None
    ) -> Stage | None:
        """A live stage of any pipeline. `lock="share"` holds it until the transaction ends, so a
        concurrent delete waits and then sees the deal this transaction puts in it."""
        return await self._one(self.scoped(workspace_id).where(Stage.id == id), lock)

    async def first_of(self, workspace_id: uuid.UUID, pipeline_id: uuid.UUID) -> Stage | None:
        statement = (
            self.scoped(workspace_id)
            .where(Stage.pipeline_id == pipeline_id)
            .order_by(Stage.position)
            .limit(1)
        )
        return await self._one(statement, "share")

    async def _one(self, statement: Any, lock: str | None) -> Stage | None:
        if lock == "share":
            statement = statement.with_for_update(read=True)
        elif lock == "update":
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def of_pipeline(self, workspace_id: uuid.UUID, pipeline_id: uuid.UUID) -> list[Stage]:
        statement = (
            self.scoped(workspace_id)
            .where(Stage.pipeline_id == pipeline_id)
            .order_by(Stage.position)
            .with_for_update()
        )
        return list((await self.session.execute(statement)).scalars())


class DealRepository(Repository[Deal]):
    model = Deal
    eager = (selectinload(Deal.contacts),)

    def list_filters(
        self, workspace_id: uuid.UUID, params: DealListParams
    ) -> list[ColumnElement[bool]]:
        where = record_filters(Deal, params)
        if params.q is not None:
            where.append(matches_all_terms(Deal.search_text, params.q))
        for field in ("pipeline_id", "stage_id", "status", "currency", "company_id"):
            if (value := getattr(params, field)) is not None:
                where.append(getattr(Deal, field) == value)
        if params.closes_on_or_after is not None:
            where.append(Deal.expected_close_date >= params.closes_on_or_after)
        if params.closes_before is not None:
            where.append(Deal.expected_close_date < params.closes_before)
        if params.closed_after is not None:
            where.append(Deal.closed_at >= params.closed_after)
        if params.closed_before is not None:
            where.append(Deal.closed_at < params.closed_before)
        if params.contact_id is not None:
            deals = select(DealContact.deal_id).where(
                DealContact.workspace_id == workspace_id,
                DealContact.contact_id == params.contact_id,
            )
            where.append(Deal.id.in_(deals.scalar_subquery()))
        return where

    async def count_in_stage(self, workspace_id: uuid.UUID, stage_id: uuid.UUID) -> int:
        statement = select(func.count()).where(
            Deal.workspace_id == workspace_id, Deal.stage_id == stage_id, Deal.deleted_at.is_(None)
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def count_in_pipeline(self, workspace_id: uuid.UUID, pipeline_id: uuid.UUID) -> int:
        statement = select(func.count()).where(
            Deal.workspace_id == workspace_id,
            Deal.pipeline_id == pipeline_id,
            Deal.deleted_at.is_(None),
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def unlink_company(self, workspace_id: uuid.UUID, company_id: uuid.UUID) -> list[Deal]:
        """Clear company_id on the company's live deals; returns them as they are now."""
        result = await self.session.execute(
            update(Deal)
            .where(
                Deal.workspace_id == workspace_id,
                Deal.company_id == company_id,
                Deal.deleted_at.is_(None),
            )
            .values(company_id=None, version=Deal.version + 1, updated_at=func.now())
            .returning(Deal)
            .options(*self.eager)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return list(result.scalars())

    async def move_contacts(
        self, workspace_id: uuid.UUID, from_ids: Sequence[uuid.UUID], to_id: uuid.UUID
    ) -> int:
        """Link `to_id` instead of these contacts on every deal (once, if it was linked already);
        how many deals changed."""
        removed = await self.session.execute(
            delete(DealContact)
            .where(DealContact.workspace_id == workspace_id, DealContact.contact_id.in_(from_ids))
            .returning(DealContact.deal_id)
        )
        deal_ids = sorted(set(removed.scalars()))
        if not deal_ids:
            return 0
        links = [
            {"workspace_id": workspace_id, "deal_id": d, "contact_id": to_id} for d in deal_ids
        ]
        await self.session.execute(insert(DealContact).on_conflict_do_nothing(), links)
        await self.session.execute(
            update(Deal)
            .where(Deal.workspace_id == workspace_id, Deal.id.in_(deal_ids))
            .values(version=Deal.version + 1, updated_at=func.now())
            .execution_options(synchronize_session=False)
        )
        return len(deal_ids)

    async def remove_contact(self, workspace_id: uuid.UUID, contact_id: uuid.UUID) -> list[Deal]:
        """Take the contact off every deal; returns the live deals it was on, as they are now."""
        removed = await self.session.execute(
            delete(DealContact)
            .where(DealContact.workspace_id == workspace_id, DealContact.contact_id == contact_id)
            .returning(DealContact.deal_id)
        )
        deal_ids = list(removed.scalars())
        if not deal_ids:
            return []
        result = await self.session.execute(
            update(Deal)
            .where(
                Deal.workspace_id == workspace_id, Deal.id.in_(deal_ids), Deal.deleted_at.is_(None)
            )
            .values(version=Deal.version + 1, updated_at=func.now())
            .returning(Deal)
            .options(*self.eager)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return list(result.scalars())

    async def forecast(
        self, workspace_id: uuid.UUID, params: ForecastParams
    ) -> tuple[list[dict[str, Any]], int]:
        """Sums per group and currency, and how many matching deals have no amount."""
        is_open = Deal.status == "open"
        placed_on = case(
            (is_open, Deal.expected_close_date),
            else_=func.cast(func.timezone("UTC", Deal.closed_at), Date),
        )
        where: list[ColumnElement[bool]] = [
            Deal.workspace_id == workspace_id,
            Deal.deleted_at.is_(None),
        ]
        if params.pipeline_id is not None:
            where.append(Deal.pipeline_id == params.pipeline_id)
        if params.owner_id is not None:
            where.append(Deal.owner_id == params.owner_id)
        if params.currency is not None:
            where.append(Deal.currency == params.currency)
        if params.on_or_after is not None:
            where.append(placed_on >= params.on_or_after)
        if params.before is not None:
            where.append(placed_on < params.before)
        group: dict[ForecastGrouping, Any] = {
            ForecastGrouping.month: func.to_char(placed_on, "YYYY-MM"),
            ForecastGrouping.owner: Deal.owner_id,
            ForecastGrouping.stage: Deal.stage_id,
        }
        key = group[params.group_by].label("key")
        order: Any = key.asc().nulls_last()
        if params.group_by is ForecastGrouping.stage:
            order = func.min(Stage.position)
        weighted = func.sum(Deal.amount * Stage.probability).filter(is_open) / 100
        # Rounded to the finest scale among the amounts, at least cents.
        scale = func.greatest(2, func.max(func.scale(Deal.amount)))

        def total(kind: str) -> Any:
            return func.coalesce(func.sum(Deal.amount).filter(Deal.status == kind), 0)

        def count(kind: str) -> Any:
            return func.count().filter(Deal.status == kind)

        statement = (
            select(
                key,
                Deal.currency,
                count("open").label("open_count"),
                total("open").label("open_amount"),
                func.coalesce(func.round(weighted, scale), 0).label("weighted_amount"),
                count("won").label("won_count"),
                total("won").label("won_amount"),
                count("lost").label("lost_count"),
                total("lost").label("lost_amount"),
            )
            .join(Stage, (Stage.workspace_id == Deal.workspace_id) & (Stage.id == Deal.stage_id))
            .where(*where, Deal.amount.is_not(None))
            .group_by(key, Deal.currency)
            .order_by(order, Deal.currency)
        )
        rows = [dict(row._mapping) for row in await self.session.execute(statement)]
        unpriced = select(func.count()).where(*where, Deal.amount.is_(None))
        return rows, int((await self.session.execute(unpriced)).scalar_one())


class DealStageChangeRepository(Repository[DealStageChange]):
    model = DealStageChange
    gone_column = None

    def of_deal(self, deal_id: uuid.UUID) -> list[ColumnElement[bool]]:
        return [DealStageChange.deal_id == deal_id]

    def add_all(self, changes: Sequence[DealStageChange]) -> None:
        self.session.add_all(changes)
