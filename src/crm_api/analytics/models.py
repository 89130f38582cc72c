import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, WorkspaceScopedMixin

CLV_RUN_STATUSES = ("queued", "succeeded", "failed")
TIME_UNITS = ("day", "week", "month")


class ClvRun(WorkspaceScopedMixin, Base):
    """A predictive CLV computation: its parameters, and once the worker has run it, the
    fitted models (BG/NBD, Gamma-Gamma) and one row per customer."""

    __tablename__ = "clv_runs"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        CheckConstraint(f"status IN {CLV_RUN_STATUSES}", name="status"),
        CheckConstraint(f"time_unit IN {TIME_UNITS}", name="time_unit"),
        ForeignKeyConstraint(
            ["workspace_id", "segment_id"], ["segments.workspace_id", "segments.id"]
        ),
        Index("ix_clv_runs_workspace_id_created_at_id", "workspace_id", "created_at", "id"),
        # The worker takes the oldest queued run.
        Index("ix_clv_runs_queued", "created_at", postgresql_where=text("status = 'queued'")),
    )

    status: Mapped[str] = mapped_column(Text, default="queued")
    as_of: Mapped[datetime]
    time_unit: Mapped[str] = mapped_column(Text)
    prediction_horizon: Mapped[float] = mapped_column(Double)
    clv_horizon_months: Mapped[int] = mapped_column(Integer)
    discount_rate_monthly: Mapped[float] = mapped_column(Double)
    segment_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    currency: Mapped[str | None] = mapped_column(Text, default=None)
    # {r, alpha, a, b, log_likelihood, converged, iterations, message} and {p, q, v, ...}
    bgnbd: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True), default=None)
    gamma_gamma: Mapped[dict[str, Any] | None] = mapped_column(
        JSONB(none_as_null=True), default=None
    )
    customers: Mapped[int | None] = mapped_column(Integer, default=None)
    returning_customers: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class ClvRunCustomer(Base):
    """One customer's inputs and predictions in a run."""

    __tablename__ = "clv_run_customers"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "run_id"], ["clv_runs.workspace_id", "clv_runs.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["workspace_id", "contact_id"], ["contacts.workspace_id", "contacts.id"],
            ondelete="CASCADE",
        ),
        # Pages by value, highest first.
        Index("ix_clv_run_customers_clv", "workspace_id", "run_id", "clv", "contact_id"),
    )  # fmt: skip

    workspace_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    frequency: Mapped[float] = mapped_column(Double)
    recency: Mapped[float] = mapped_column(Double)
    age: Mapped[float] = mapped_column(Double)  # the model's T
    monetary_value: Mapped[float] = mapped_column(Double)
    historical_value: Mapped[float] = mapped_column(Double)
    expected_purchases: Mapped[float] = mapped_column(Double)
    p_alive: Mapped[float] = mapped_column(Double)
    expected_average_spend: Mapped[float] = mapped_column(Double)
    clv: Mapped[float] = mapped_column(Double)
    # RFM as of the run's as_of (analytics/rfm.py): days since the last order, orders, total;
    # none for runs made before RFM was stored with them.
    rfm_recency: Mapped[int | None] = mapped_column(Integer)
    rfm_frequency: Mapped[int | None] = mapped_column(Integer)
    rfm_monetary: Mapped[float | None] = mapped_column(Double)
    rfm_recency_score: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_frequency_score: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_monetary_score: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_segment: Mapped[str | None] = mapped_column(Text)
