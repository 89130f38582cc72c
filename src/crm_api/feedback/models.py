import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, Integer, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, RecordMixin
from crm_api.core.errors import register_constraint

FEEDBACK_KINDS = ("nps", "csat")
SURVEY_CHANNELS = ("email", "sms", "web", "in_app", "phone", "chat")
LIVE = text("deleted_at IS NULL")


class Feedback(RecordMixin, Base):
    """One survey response: NPS (0-10, how likely to recommend) or CSAT (1-5, how satisfied)."""

    __tablename__ = "feedback"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "contact_id"], ["contacts.workspace_id", "contacts.id"]
        ),
        ForeignKeyConstraint(["workspace_id", "ticket_id"], ["tickets.workspace_id", "tickets.id"]),
        CheckConstraint(f"kind IN {FEEDBACK_KINDS}", name="kind"),
        CheckConstraint(f"channel IN {SURVEY_CHANNELS}", name="channel"),
        CheckConstraint(
            "(kind = 'nps' AND score BETWEEN 0 AND 10) "
            "OR (kind = 'csat' AND score BETWEEN 1 AND 5)",
            name="score",
        ),
        Index(
            "uq_feedback_workspace_id_external_id",
            "workspace_id",
            "external_id",
            unique=True,
            postgresql_where=LIVE,
        ),
        Index(
            "ix_feedback_workspace_id_responded_at_id",
            "workspace_id",
            "responded_at",
            "id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_feedback_workspace_id_created_at_id",
            "workspace_id",
            "created_at",
            "id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_feedback_workspace_id_contact_id_responded_at",
            "workspace_id",
            "contact_id",
            "responded_at",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_feedback_workspace_id_ticket_id_responded_at",
            "workspace_id",
            "ticket_id",
            "responded_at",
            postgresql_where=LIVE,
        ),
    )

    kind: Mapped[str] = mapped_column(Text)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    channel: Mapped[str | None] = mapped_column(Text, default=None)
    contact_id: Mapped[uuid.UUID]
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    responded_at: Mapped[datetime]
    tags: Mapped[list[str]] = mapped_column(default=list, server_default="{}")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")


register_constraint(
    "uq_feedback_workspace_id_external_id",
    409,
    ("body", "external_id"),
    "Another response already has this external_id.",
)
