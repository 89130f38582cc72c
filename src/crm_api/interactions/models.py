import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, Integer, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, RecordMixin
from crm_api.core.errors import register_constraint

INTERACTION_CHANNELS = ("email", "call", "meeting", "chat", "sms", "social", "note", "visit")
DIRECTIONS = ("inbound", "outbound")
LIVE = text("deleted_at IS NULL")


class Interaction(RecordMixin, Base):
    """A touchpoint with a customer on any channel. It keeps pointing at the contact, company or
    deal it was with after they are deleted: history is not rewritten."""

    __tablename__ = "interactions"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "contact_id"], ["contacts.workspace_id", "contacts.id"]
        ),
        ForeignKeyConstraint(
            ["workspace_id", "company_id"], ["companies.workspace_id", "companies.id"]
        ),
        ForeignKeyConstraint(["workspace_id", "deal_id"], ["deals.workspace_id", "deals.id"]),
        ForeignKeyConstraint(["workspace_id", "user_id"], ["users.workspace_id", "users.id"]),
        CheckConstraint(f"channel IN {INTERACTION_CHANNELS}", name="channel"),
        CheckConstraint(f"direction IN {DIRECTIONS}", name="direction"),
        CheckConstraint("duration_seconds >= 0", name="duration_seconds"),
        CheckConstraint("contact_id IS NOT NULL OR company_id IS NOT NULL", name="with_someone"),
        Index(
            "uq_interactions_workspace_id_external_id",
            "workspace_id",
            "external_id",
            unique=True,
            postgresql_where=LIVE,
        ),
        Index(
            "ix_interactions_workspace_id_occurred_at_id",
            "workspace_id",
            "occurred_at",
            "id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_interactions_workspace_id_created_at_id",
            "workspace_id",
            "created_at",
            "id",
            postgresql_where=LIVE,
        ),
        # What a contact's or company's timeline reads.
        Index(
            "ix_interactions_workspace_id_contact_id_occurred_at",
            "workspace_id",
            "contact_id",
            "occurred_at",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_interactions_workspace_id_company_id_occurred_at",
            "workspace_id",
            "company_id",
            "occurred_at",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_interactions_workspace_id_deal_id", "workspace_id", "deal_id", postgresql_where=LIVE
        ),
        Index(
            "ix_interactions_workspace_id_user_id", "workspace_id", "user_id", postgresql_where=LIVE
        ),
    )

    channel: Mapped[str] = mapped_column(Text)
    direction: Mapped[str | None] = mapped_column(Text, default=None)
    occurred_at: Mapped[datetime]
    duration_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    subject: Mapped[str | None] = mapped_column(Text, default=None)
    summary: Mapped[str | None] = mapped_column(Text, default=None)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    company_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    deal_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    tags: Mapped[list[str]] = mapped_column(default=list, server_default="{}")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")


register_constraint(
    "uq_interactions_workspace_id_external_id",
    409,
    ("body", "external_id"),
    "Another interaction already has this external_id.",
)
register_constraint(
    "ck_interactions_with_someone",
    422,
    ("body", "contact_id"),
    "An interaction is with a contact or a company (or both).",
)
