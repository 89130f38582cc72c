"""A workspace's lead scoring: its rules (one document), and the logistic regression models
trained on its won and lost deals. Each contact's score lives with its other metrics
(contacts.models.ContactMetrics), so filters and segments can use `metrics.lead_score`."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, TimestampMixin, WorkspaceScopedMixin


class LeadScoring(TimestampMixin, Base):
    __tablename__ = "lead_scoring"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id"),
        ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["workspace_id", "model_id"], ["lead_score_models.workspace_id", "lead_score_models.id"]
        ),
        CheckConstraint("model_weight >= 0 AND model_weight <= 1", name="model_weight"),
    )

    workspace_id: Mapped[uuid.UUID]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    fit_rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    engagement_rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    use_model: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    model_weight: Mapped[float] = mapped_column(Double, default=0.5, server_default="0.5")
    # The latest model trained; it scores when use_model is set.
    model_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    # The last of the workspace's events whose contacts were scored again.
    event_sequence: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # A pass over every contact (windows move on with time; rules or model changed): where it
    # has got to, and when the last one finished (null: one is due now).
    rescore_after_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    rescored_at: Mapped[datetime | None] = mapped_column(default=None)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class LeadScoreModel(WorkspaceScopedMixin, Base):
    """A logistic regression of won (1) against lost (0) over the contacts of closed deals,
    with the rule definitions it was trained on, so it scores alike after the rules change."""

    __tablename__ = "lead_score_models"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        Index(
            "ix_lead_score_models_workspace_id_created_at_id", "workspace_id", "created_at", "id"
        ),
    )

    fit_rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    engagement_rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # [{key, label, mean, std, weight}]: weights of standardised features.
    features: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    intercept: Mapped[float] = mapped_column(Double)
    l2_penalty: Mapped[float] = mapped_column(Double)
    samples: Mapped[int] = mapped_column(Integer)
    won: Mapped[int] = mapped_column(Integer)
    lost: Mapped[int] = mapped_column(Integer)
    auc: Mapped[float | None] = mapped_column(Double)
    log_loss: Mapped[float] = mapped_column(Double)
    converged: Mapped[bool] = mapped_column(Boolean)
    iterations: Mapped[int] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text, default=None)
