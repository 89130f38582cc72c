import uuid
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
    func,
    or_,
    select,
)

from crm_api.analytics.models import ClvRun, ClvRunCustomer
from crm_api.contacts.models import Contact
from crm_api.core.pagination import PageRequest, SortField, keyset_after, order_by
from crm_api.core.repository import Repository
from crm_api.orders.models import Order
from crm_api.segments.models import SegmentMember

CLV_RUN_ID_SORT = SortField(ClvRun.id, uuid.UUID)
CLV_RUN_SORTS = {"created_at": SortField(ClvRun.created_at, datetime)}
CLV_CUSTOMER_ID_SORT = SortField(ClvRunCustomer.contact_id, uuid.UUID)
CLV_CUSTOMER_SORTS = {
    "clv": SortField(ClvRunCustomer.clv, float),
    "p_alive": SortField(ClvRunCustomer.p_alive, float),
    "expected_purchases": SortField(ClvRunCustomer.expected_purchases, float),
}
# What the loader reads: the orders' columns as query_frame types them.
ORDER_SCHEMA: dict[str, pl.DataType] = {
    "contact_id": pl.String(),
    "ordered_at": pl.Datetime("us", "UTC"),
    "total": pl.Float64(),
}
CUSTOMER_COLUMNS = [
    "workspace_id", "run_id", "contact_id", "frequency", "recency", "age", "monetary_value",
    "historical_value", "expected_purchases", "p_alive", "expected_average_spend", "clv",
]  # fmt: skip


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

    def orders(self, run: ClvRun, currency: str) -> Select[tuple[object, ...]]:
        """The run's orders in its currency, of live contacts (of its segment, if any)."""
        where = [
            Order.workspace_id == run.workspace_id,
            Order.currency == currency,
            *standing_orders(run.as_of),
        ]
        if run.segment_id is not None:
            members = select(SegmentMember.contact_id).where(
                SegmentMember.workspace_id == run.workspace_id,
                SegmentMember.segment_id == run.segment_id,
            )
            where.append(Order.contact_id.in_(members))
        return (
            select(
                Order.contact_id.cast(Text).label("contact_id"),
                epoch_us(Order.ordered_at).label("ordered_at"),
                Order.total.cast(Double).label("total"),
            )
            .join(
                Contact,
                and_(
                    Contact.workspace_id == Order.workspace_id,
                    Contact.id == Order.contact_id,
                    Contact.deleted_at.is_(None),
                ),
            )
            .where(*where)
        )

    async def most_used_currency(self, run: ClvRun) -> str | None:
        statement = (
            select(Order.currency)
            .where(Order.workspace_id == run.workspace_id, *standing_orders(run.as_of))
            .group_by(Order.currency)
            .order_by(func.count().desc(), Order.currency)
            .limit(1)
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
            pl.lit(str(run.workspace_id)).alias("workspace_id"),
            pl.lit(str(run.id)).alias("run_id"),
            "contact_id", "frequency", "recency", pl.col("T").alias("age"), "monetary_value",
            "historical_value", "expected_purchases", "p_alive", "expected_average_spend", "clv",
        )  # fmt: skip
        connection = await self.session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        records = [
            (uuid.UUID(w), uuid.UUID(r), uuid.UUID(c), *values)
            for w, r, c, *values in rows.iter_rows()
        ]
        await driver.copy_records_to_table(
            ClvRunCustomer.__tablename__, records=records, columns=CUSTOMER_COLUMNS
        )

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
