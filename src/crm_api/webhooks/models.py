"""The outbox (events), the per-workspace event counter, webhook endpoints, and the deliveries
of events to endpoints with every attempt made."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, WorkspaceScopedMixin

DELIVERY_STATUSES = ("pending", "delivering", "succeeded", "failed")


class Event(WorkspaceScopedMixin, Base):
    """One change, appended in the transaction that made it. `sequence` is assigned at commit,
    under the workspace's counter lock, so it follows commit order with no gaps."""

    __tablename__ = "events"
    __table_args__ = (
        Index("uq_events_workspace_id_sequence", "workspace_id", "sequence", unique=True),
        Index("ix_events_occurred_at", "occurred_at"),
    )

    sequence: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime]
    resource_id: Mapped[uuid.UUID | None]
    # `json`, not `jsonb`: the resource keeps the field order the API gives it.
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Set for an event meant for one endpoint only (`webhook.test`); such events are not in
    # the feed.
    endpoint_id: Mapped[uuid.UUID | None]


class EventCounter(Base):
    """The last sequence given to an event of the workspace."""

    __tablename__ = "event_counters"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    last_sequence: Mapped[int] = mapped_column(BigInteger)


class WebhookEndpoint(WorkspaceScopedMixin, Base):
    __tablename__ = "webhook_endpoints"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        Index(
            "ix_webhook_endpoints_workspace_id_created_at_id",
            "workspace_id",
            "created_at",
            "id",
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    event_types: Mapped[list[str]]
    fields: Mapped[list[str]] = mapped_column(default=list, server_default="{}")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    disabled_reason: Mapped[str | None] = mapped_column(Text, default=None)
    secret: Mapped[str] = mapped_column(Text)
    # After a rotation the old secret signs beside the new one until it expires.
    previous_secret: Mapped[str | None] = mapped_column(Text, default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # Start of the current run of failed attempts; cleared by a success.
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookDelivery(WorkspaceScopedMixin, Base):
    """One event for one endpoint. `next_attempt_at` is when a worker may take it next: the
    retry time while pending, the end of the worker's lease while delivering."""

    __tablename__ = "webhook_deliveries"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "event_id"], ["events.workspace_id", "events.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["workspace_id", "endpoint_id"],
            ["webhook_endpoints.workspace_id", "webhook_endpoints.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint(f"status IN {DELIVERY_STATUSES}", name="status"),
        # The queue: only what a worker may still take.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'delivering')"),
        ),
        # An endpoint's delivery log, in the order it is listed.
        Index(
            "ix_webhook_deliveries_workspace_id_endpoint_id_created_at_id",
            "workspace_id",
            "endpoint_id",
            "created_at",
            "id",
        ),
        Index("ix_webhook_deliveries_workspace_id_event_id", "workspace_id", "event_id"),
    )

    endpoint_id: Mapped[uuid.UUID]
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(Text)
    event_sequence: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text, default="pending", server_default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    # Which claim holds the lease: a worker whose lease ran out cannot overwrite the outcome
    # recorded by the worker that took the delivery over.
    claim_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_response_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookDeliveryAttempt(WorkspaceScopedMixin, Base):
    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "delivery_id"],
            ["webhook_deliveries.workspace_id", "webhook_deliveries.id"],
            ondelete="CASCADE",
        ),
        Index(
            "ix_webhook_delivery_attempts_workspace_id_delivery_id",
            "workspace_id",
            "delivery_id",
        ),
    )

    delivery_id: Mapped[uuid.UUID]
    attempted_at: Mapped[datetime]
    succeeded: Mapped[bool] = mapped_column(Boolean)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
