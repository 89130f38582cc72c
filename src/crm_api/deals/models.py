import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Computed,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_api.core.db import Base, RecordMixin, WorkspaceScopedMixin
from crm_api.core.errors import register_constraint

STAGE_KINDS = ("open", "won", "lost")
CLOSED_KINDS = ("won", "lost")
LIVE = text("deleted_at IS NULL")


class Stage(WorkspaceScopedMixin, Base):
    """A step of a pipeline: open stages carry a win probability; won and lost stages close."""

    __tablename__ = "stages"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "pipeline_id"], ["pipelines.workspace_id", "pipelines.id"]
        ),
        # What deals refer to, so a deal's stage is always one of its pipeline's.
        UniqueConstraint("workspace_id", "pipeline_id", "id"),
        CheckConstraint(f"kind IN {STAGE_KINDS}", name="kind"),
        CheckConstraint("probability BETWEEN 0 AND 100", name="probability"),
    )

    pipeline_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)
    probability: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class Pipeline(RecordMixin, Base):
    __tablename__ = "pipelines"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        Index(
            "uq_pipelines_workspace_id_external_id",
            "workspace_id",
            "external_id",
            unique=True,
            postgresql_where=LIVE,
        ),
        Index(
            "ix_pipelines_workspace_id_created_at_id",
            "workspace_id",
            "created_at",
            "id",
            postgresql_where=LIVE,
        ),
    )

    name: Mapped[str] = mapped_column(Text)
    stages: Mapped[list[Stage]] = relationship(
        primaryjoin="and_(Pipeline.workspace_id == foreign(Stage.workspace_id), "
        "Pipeline.id == foreign(Stage.pipeline_id), Stage.deleted_at.is_(None))",
        order_by=Stage.position,
        viewonly=True,
        lazy="raise",
    )


class DealContact(Base):
    __tablename__ = "deal_contacts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "deal_id"], ["deals.workspace_id", "deals.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["workspace_id", "contact_id"],
            ["contacts.workspace_id", "contacts.id"],
            ondelete="CASCADE",
        ),
        Index("ix_deal_contacts_workspace_id_contact_id", "workspace_id", "contact_id"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    deal_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class Deal(RecordMixin, Base):
    __tablename__ = "deals"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "pipeline_id", "stage_id"],
            ["stages.workspace_id", "stages.pipeline_id", "stages.id"],
        ),
        ForeignKeyConstraint(["workspace_id", "owner_id"], ["users.workspace_id", "users.id"]),
        ForeignKeyConstraint(
            ["workspace_id", "company_id"], ["companies.workspace_id", "companies.id"]
        ),
        CheckConstraint(f"status IN {STAGE_KINDS}", name="status"),
        CheckConstraint("amount >= 0", name="amount"),
        CheckConstraint("amount IS NULL OR currency IS NOT NULL", name="currency"),
        Index(
            "uq_deals_workspace_id_external_id",
            "workspace_id",
            "external_id",
            unique=True,
            postgresql_where=LIVE,
        ),
        Index(
            "ix_deals_workspace_id_created_at_id",
            "workspace_id",
            "created_at",
            "id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_deals_workspace_id_updated_at_id",
            "workspace_id",
            "updated_at",
            "id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_deals_workspace_id_pipeline_id_stage_id",
            "workspace_id",
            "pipeline_id",
            "stage_id",
            postgresql_where=LIVE,
        ),
        Index("ix_deals_workspace_id_owner_id", "workspace_id", "owner_id", postgresql_where=LIVE),
        Index(
            "ix_deals_workspace_id_company_id", "workspace_id", "company_id", postgresql_where=LIVE
        ),
        Index("ix_deals_tags", "tags", postgresql_using="gin", postgresql_where=LIVE),
        Index(
            "ix_deals_search_text",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
            postgresql_where=LIVE,
        ),
    )

    name: Mapped[str] = mapped_column(Text)
    pipeline_id: Mapped[uuid.UUID]
    stage_id: Mapped[uuid.UUID]
    # The kind of the deal's stage, kept with the deal so lists and the forecast need no join.
    status: Mapped[str] = mapped_column(Text)
    amount: Mapped[Decimal | None] = mapped_column(Numeric, default=None)
    currency: Mapped[str | None] = mapped_column(Text, default=None)
    expected_close_date: Mapped[date | None] = mapped_column(default=None)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    company_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    source: Mapped[str | None] = mapped_column(Text, default=None)
    lost_reason: Mapped[str | None] = mapped_column(Text, default=None)
    tags: Mapped[list[str]] = mapped_column(default=list, server_default="{}")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    stage_entered_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    search_text: Mapped[str] = mapped_column(
        Text, Computed("crm_fold(name)", persisted=True), deferred=True
    )
    contacts: Mapped[list[DealContact]] = relationship(
        lazy="raise", order_by=DealContact.contact_id, cascade="all, delete-orphan"
    )

    @property
    def contact_ids(self) -> list[uuid.UUID]:
        return [link.contact_id for link in self.contacts]


class DealStageChange(WorkspaceScopedMixin, Base):
    """One move of a deal, from a stage (none when the deal was created) to another."""

    __tablename__ = "deal_stage_changes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "deal_id"], ["deals.workspace_id", "deals.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["workspace_id", "from_stage_id"], ["stages.workspace_id", "stages.id"]
        ),
        ForeignKeyConstraint(["workspace_id", "to_stage_id"], ["stages.workspace_id", "stages.id"]),
        Index(
            "ix_deal_stage_changes_workspace_id_deal_id_created_at_id",
            "workspace_id",
            "deal_id",
            "created_at",
            "id",
        ),
    )

    deal_id: Mapped[uuid.UUID]
    from_pipeline_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    from_stage_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    to_pipeline_id: Mapped[uuid.UUID]
    to_stage_id: Mapped[uuid.UUID]
    # Who moved it: the API key, and the user it acts as (if any).
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)


register_constraint(
    "uq_pipelines_workspace_id_external_id",
    409,
    ("body", "external_id"),
    "Another pipeline already has this external_id.",
)
register_constraint(
    "uq_deals_workspace_id_external_id",
    409,
    ("body", "external_id"),
    "Another deal already has this external_id.",
)
register_constraint(
    "fk_deals_workspace_id_owner_id_users", 422, ("body", "owner_id"), "No user with this id."
)
register_constraint(
    "fk_deals_workspace_id_company_id_companies",
    422,
    ("body", "company_id"),
    "No company with this id.",
)
register_constraint(
    "fk_deal_contacts_workspace_id_contact_id_contacts",
    422,
    ("body", "contact_ids"),
    "No contact with this id.",
)
