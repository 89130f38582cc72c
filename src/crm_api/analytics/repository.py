import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Double,
    Select,
    Text,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.analytics.load import TIMESTAMP, UUID_KEY
from crm_api.analytics.models import ClvRun, ClvRunCustomer
from crm_api.contacts.models import Contact
from crm_api.core.db import driver_connection
from crm_api.core.pagination import PageRequest, SortField, keyset_after, order_by
from crm_api.core.repository import Repository
from crm_api.deals.models import Deal, DealStageChange, Pipeline, Stage
from crm_api.feedback.models import Feedback
from crm_api.orders.models import Order
from crm_api.segments.models import SegmentMember
from crm_api.tickets.models import Ticket

CLV_RUN_ID_SORT = SortField(ClvRun.id, uuid.UUID)
CLV_RUN_SORTS = {"created_at": SortField(ClvRun.created_at, datetime)}
CLV_CUSTOMER_ID_SORT = SortField(ClvRunCustomer.contact_id, uuid.UUID)
CLV_CUSTOMER_SORTS = {
    "clv": SortField(ClvRunCustomer.clv, float),
    "p_alive": SortField(ClvRunCustomer.p_alive, float),
    "expected_purchases": SortField(ClvRunCustomer.expected_purchases, float),
}
# What the loader reads: the columns as query_frame (orders: fixed_width_frame) types them.
ORDER_SCHEMA: dict[str, pl.DataType] = {
    "contact_id": UUID_KEY,
    "ordered_at": TIMESTAMP,
    "total": pl.Float64(),
}
CHANGE_SCHEMA: dict[str, pl.DataType] = {
    "deal_id": pl.String(),
    "to_stage_id": pl.String(),
    "changed_at": pl.Datetime("us", "UTC"),
}
STAGE_SCHEMA: dict[str, pl.DataType] = {
    "stage_id": pl.String(),
    "pipeline_id": pl.String(),
    "pipeline_name": pl.String(),
    "name": pl.String(),
    "position": pl.Int64(),
    "kind": pl.String(),
}
DEAL_SCHEMA: dict[str, pl.DataType] = {
    "deal_id": pl.String(),
    "created_at": pl.Datetime("us", "UTC"),
}
TICKET_SCHEMA: dict[str, pl.DataType] = {
    name: pl.Datetime("us", "UTC")
    for name in (
        "created_at",
        "first_responded_at",
        "resolved_at",
        "first_response_due_at",
        "resolution_due_at",
    )
}
FEEDBACK_SCHEMA: dict[str, pl.DataType] = {
    "score": pl.Int64(),
    "channel": pl.String(),
    "responded_at": pl.Datetime("us", "UTC"),
}
RFM_COLUMNS = [
    "rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_recency_score", "rfm_frequency_score",
    "rfm_monetary_score", "rfm_segment",
]  # fmt: skip
CUSTOMER_COLUMNS = [
    "workspace_id", "run_id", "contact_id", "frequency", "recency", "age", "monetary_value",
    "historical_value", "expected_purchases", "p_alive", "expected_average_spend", "clv",
    *RFM_COLUMNS,
]  # fmt: skip
# A workspace-wide run's scores become the contacts' metrics, unless a run as of a later time
# gave them already (a run on the past, for a backtest, changes nothing); contacts the run did
# not score lose the scores of older runs.
PUBLISH_SCORES = text("""
INSERT INTO contact_metrics (workspace_id, contact_id, predicted_clv, p_alive,
    expected_purchases, rfm_recency_score, rfm_frequency_score, rfm_monetary_score,
    rfm_segment, scored_at, clv_run_id)
SELECT workspace_id, contact_id, clv, p_alive, expected_purchases, rfm_recency_score,
    rfm_frequency_score, rfm_monetary_score, rfm_segment, :as_of, run_id
FROM clv_run_customers WHERE workspace_id = :workspace_id AND run_id = :run_id
ON CONFLICT (workspace_id, contact_id) DO UPDATE SET
    predicted_clv = excluded.predicted_clv, p_alive = excluded.p_alive,
    expected_purchases = excluded.expected_purchases,
    rfm_recency_score = excluded.rfm_recency_score,
    rfm_frequency_score = excluded.rfm_frequency_score,
    rfm_monetary_score = excluded.rfm_monetary_score, rfm_segment = excluded.rfm_segment,
    scored_at = excluded.scored_at, clv_run_id = excluded.clv_run_id
WHERE contact_metrics.scored_at IS NULL OR contact_metrics.scored_at <= excluded.scored_at
""")
CLEAR_OLDER_SCORES = text("""
UPDATE contact_metrics SET predicted_clv = NULL, p_alive = NULL, expected_purchases = NULL,
    rfm_recency_score = NULL, rfm_frequency_score = NULL, rfm_monetary_score = NULL,
    rfm_segment = NULL, scored_at = :as_of, clv_run_id = :run_id
WHERE workspace_id = :workspace_id AND scored_at <= :as_of AND clv_run_id <> :run_id
""")


def epoch_us(column: Any) -> ColumnElement[int]:
    """A timestamp as microseconds since the epoch (analytics/load.py's TIMESTAMP)."""
    return (func.extract("epoch", column) * 1_000_000).cast(BigInteger)


def standing_orders(as_of: datetime) -> list[ColumnElement[bool]]:
    """Orders as they stood at `as_of`: placed by then and paid (whenever: an ERP syncs its
    history as paid today), not refunded or cancelled by then."""
    return [
        Order.deleted_at.is_(None),
        Order.ordered_at <= as_of,
        Order.paid_at.is_not(None),
        or_(Order.refunded_at.is_(None), Order.refunded_at > as_of),
        or_(Order.cancelled_at.is_(None), Order.cancelled_at > as_of),
    ]


@dataclass(frozen=True)
class Population:
    """Whose records a metric reads: the live contacts of a workspace, or of one segment."""

    workspace_id: uuid.UUID
    segment_id: uuid.UUID | None = None

    def of(self, model: Any) -> list[ColumnElement[bool]]:
        """The conditions on `model`'s rows (it has workspace_id and contact_id)."""
        # Not "a live contact exists" but "no deleted one does" (contact_id is a foreign key):
        # the anti-join hashes the few deleted contacts, not every contact.
        where = [
            model.workspace_id == self.workspace_id,
            ~exists().where(
                Contact.workspace_id == self.workspace_id,
                Contact.id == model.contact_id,
                Contact.deleted_at.is_not(None),
            ),
        ]
        if self.segment_id is not None:
            members = select(SegmentMember.contact_id).where(
                SegmentMember.workspace_id == self.workspace_id,
                SegmentMember.segment_id == self.segment_id,
            )
            where.append(model.contact_id.in_(members))
        return where


def order_rows(population: Population, as_of: datetime, currency: str) -> Select[*tuple[Any, ...]]:
    """The orders standing at `as_of` in one currency, as ORDER_SCHEMA."""
    return select(
        Order.contact_id.label("contact_id"),
        Order.ordered_at.label("ordered_at"),
        Order.total.cast(Double).label("total"),
    ).where(*population.of(Order), Order.currency == currency, *standing_orders(as_of))


def feedback_rows(
    population: Population, kind: str, start: datetime | None, end: datetime
) -> Select[*tuple[Any, ...]]:
    """The answers of one kind given in [start, end), as FEEDBACK_SCHEMA."""
    where = [*population.of(Feedback), Feedback.deleted_at.is_(None), Feedback.kind == kind]
    where.append(Feedback.responded_at < end)
    if start is not None:
        where.append(Feedback.responded_at >= start)
    return select(
        Feedback.score.label("score"),
        func.coalesce(Feedback.channel, "unknown").label("channel"),
        epoch_us(Feedback.responded_at).label("responded_at"),
    ).where(*where)


class MetricsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def most_used_currency(self, population: Population, as_of: datetime) -> str | None:
        """The currency most of the standing orders are in."""
        statement = (
            select(Order.currency)
            .where(*population.of(Order), *standing_orders(as_of))
            .group_by(Order.currency)
            .order_by(func.count().desc(), Order.currency)
            .limit(1)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()


class ClvRunRepository(Repository[ClvRun]):
    model = ClvRun
    gone_column = None

    async def claim_queued(self) -> ClvRun | None:
        """The oldest queued run no other worker holds, locked until this transaction ends."""
        statement = (
            select(ClvRun)
            .where(ClvRun.status == "queued")
            .order_by(ClvRun.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def store_customers(self, run: ClvRun, customers: pl.DataFrame) -> None:
        """Replace the run's customers with these rows, by COPY."""
        await self.session.execute(
            delete(ClvRunCustomer).where(
                ClvRunCustomer.workspace_id == run.workspace_id, ClvRunCustomer.run_id == run.id
            )
        )
        rows = customers.select(
            "contact_id", "frequency", "recency", pl.col("T").alias("age"), "monetary_value",
            "historical_value", "expected_purchases", "p_alive", "expected_average_spend", "clv",
            *RFM_COLUMNS,
        )  # fmt: skip
        driver = await driver_connection(await self.session.connection())
        records = [
            (run.workspace_id, run.id, uuid.UUID(int=contact), *values)
            for contact, *values in rows.iter_rows()
        ]
        await driver.copy_records_to_table(
            ClvRunCustomer.__tablename__, records=records, columns=CUSTOMER_COLUMNS
        )

    async def latest_workspace_run(self, workspace_id: uuid.UUID, as_of: datetime) -> ClvRun | None:
        """The succeeded workspace-wide run as of the latest time up to `as_of`."""
        statement = (
            self.scoped(workspace_id)
            .where(
                ClvRun.status == "succeeded",
                ClvRun.segment_id.is_(None),
                ClvRun.as_of <= as_of,
            )
            .order_by(ClvRun.as_of.desc(), ClvRun.finished_at.desc())
            .limit(1)
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    def clv_values(self, run: ClvRun) -> Select[*tuple[Any, ...]]:
        return select(ClvRunCustomer.clv.label("clv")).where(
            ClvRunCustomer.workspace_id == run.workspace_id, ClvRunCustomer.run_id == run.id
        )

    async def publish_scores(self, run: ClvRun) -> None:
        keys = {"workspace_id": run.workspace_id, "run_id": run.id, "as_of": run.as_of}
        await self.session.execute(PUBLISH_SCORES, keys)
        await self.session.execute(CLEAR_OLDER_SCORES, keys)

    async def customers_page(
        self, run: ClvRun, page: PageRequest
    ) -> list[tuple[ClvRunCustomer, tuple[Any, ...]]]:
        sort_values = [key.field.expression for key in page.order]
        statement = (
            select(ClvRunCustomer)
            .add_columns(*sort_values)
            .where(ClvRunCustomer.workspace_id == run.workspace_id, ClvRunCustomer.run_id == run.id)
        )
        if page.after is not None:
            statement = statement.where(keyset_after(page.order, page.after))
        statement = statement.order_by(*order_by(page.order)).limit(page.limit + 1)
        rows = (await self.session.execute(statement)).all()
        return [(row[0], tuple(row[1:])) for row in rows]


def stage_change_rows(workspace_id: uuid.UUID, as_of: datetime) -> Select[*tuple[Any, ...]]:
    """The moves of live deals up to `as_of`, as CHANGE_SCHEMA."""
    live_deal = exists().where(
        Deal.workspace_id == DealStageChange.workspace_id,
        Deal.id == DealStageChange.deal_id,
        Deal.deleted_at.is_(None),
    )
    return select(
        DealStageChange.deal_id.cast(Text).label("deal_id"),
        DealStageChange.to_stage_id.cast(Text).label("to_stage_id"),
        epoch_us(DealStageChange.created_at).label("changed_at"),
    ).where(
        DealStageChange.workspace_id == workspace_id,
        DealStageChange.created_at <= as_of,
        live_deal,
    )


def stage_rows(workspace_id: uuid.UUID, pipeline_id: uuid.UUID | None) -> Select[*tuple[Any, ...]]:
    """The live stages of live pipelines, as STAGE_SCHEMA."""
    statement = (
        select(
            Stage.id.cast(Text).label("stage_id"),
            Stage.pipeline_id.cast(Text).label("pipeline_id"),
            Pipeline.name.label("pipeline_name"),
            Stage.name.label("name"),
            Stage.position.label("position"),
            Stage.kind.label("kind"),
        )
        .join(
            Pipeline,
            and_(Pipeline.workspace_id == Stage.workspace_id, Pipeline.id == Stage.pipeline_id),
        )
        .where(
            Stage.workspace_id == workspace_id,
            Stage.deleted_at.is_(None),
            Pipeline.deleted_at.is_(None),
        )
    )
    if pipeline_id is not None:
        statement = statement.where(Stage.pipeline_id == pipeline_id)
    return statement


def deal_rows(workspace_id: uuid.UUID, as_of: datetime) -> Select[*tuple[Any, ...]]:
    return select(
        Deal.id.cast(Text).label("deal_id"), epoch_us(Deal.created_at).label("created_at")
    ).where(Deal.workspace_id == workspace_id, Deal.deleted_at.is_(None), Deal.created_at <= as_of)


def ticket_rows(
    population: Population, start: datetime, as_of: datetime
) -> Select[*tuple[Any, ...]]:
    """The live tickets opened in [start, as_of], as TICKET_SCHEMA."""
    return select(*(epoch_us(getattr(Ticket, name)).label(name) for name in TICKET_SCHEMA)).where(
        *population.of(Ticket),
        Ticket.deleted_at.is_(None),
        Ticket.created_at >= start,
        Ticket.created_at <= as_of,
    )
