import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    ForeignKeyConstraint,
    Index,
    Integer,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, RecordMixin, WorkspaceScopedMixin
from crm_api.core.errors import register_constraint

TICKET_STATUSES = ("new", "open", "pending", "resolved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
CHANNELS = ("email", "phone", "chat", "web", "social", "in_person")
LIVE = text("deleted_at IS NULL")


class SlaPolicy(RecordMixin, Base):
    """First-response and resolution targets per priority, in calendar or business time."""

    __tablename__ = "sla_policies"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        Index(
            "uq_sla_policies_workspace_id_external_id",
            "workspace_id",
            "external_id",
            unique=True,
            postgresql_where=LIVE,
        ),
        # At most one default policy per workspace.
        Index(
            "uq_sla_policies_workspace_id_default",
            "workspace_id",
            unique=True,
            postgresql_where=text("is_default AND deleted_at IS NULL"),
        ),
        Index(
            "ix_sla_policies_workspace_id_created_at_id",
            "workspace_id",
            "created_at",
            "id",
            postgresql_where=LIVE,
        ),
    )

    name: Mapped[str] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # {"urgent": {"first_response_minutes": 60, "resolution_minutes": 480}, ...}
    targets: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    # None: calendar time; else {"timezone": "Europe/Berlin", "monday": [{"start", "end"}], …}
    business_hours: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)


class Ticket(RecordMixin, Base):
    __tablename__ = "tickets"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "contact_id"], ["contacts.workspace_id", "contacts.id"]
        ),
        ForeignKeyConstraint(
            ["workspace_id", "company_id"], ["companies.workspace_id", "companies.id"]
        ),
        ForeignKeyConstraint(["workspace_id", "assignee_id"], ["users.workspace_id", "users.id"]),
        ForeignKeyConstraint(["workspace_id", "team_id"], ["teams.workspace_id", "teams.id"]),
        ForeignKeyConstraint(
            ["workspace_id", "sla_policy_id"], ["sla_policies.workspace_id", "sla_policies.id"]
        ),
        CheckConstraint(f"status IN {TICKET_STATUSES}", name="status"),
        CheckConstraint(f"priority IN {PRIORITIES}", name="priority"),
        CheckConstraint(f"channel IN {CHANNELS}", name="channel"),
        Index(
            "uq_tickets_workspace_id_external_id",
            "workspace_id",
            "external_id",
            unique=True,
            postgresql_where=LIVE,
        ),
        Index(
            "ix_tickets_workspace_id_created_at_id",
            "workspace_id",
            "created_at",
            "id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_tickets_workspace_id_updated_at_id",
            "workspace_id",
            "updated_at",
            "id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_tickets_workspace_id_status_created_at",
            "workspace_id",
            "status",
            "created_at",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_tickets_workspace_id_assignee_id",
            "workspace_id",
            "assignee_id",
            postgresql_where=LIVE,
        ),
        Index("ix_tickets_workspace_id_team_id", "workspace_id", "team_id", postgresql_where=LIVE),
        Index(
            "ix_tickets_workspace_id_contact_id",
            "workspace_id",
            "contact_id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_tickets_workspace_id_company_id",
            "workspace_id",
            "company_id",
            postgresql_where=LIVE,
        ),
        Index("ix_tickets_tags", "tags", postgresql_using="gin", postgresql_where=LIVE),
        Index(
            "ix_tickets_search_text",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
            postgresql_where=LIVE,
        ),
        # What the worker's breach scan reads: only tickets still waiting on a target whose
        # breach has not been announced, so the index stays as small as the open queue.
        Index(
            "ix_tickets_first_response_due_at",
            "first_response_due_at",
            postgresql_where=text(
                "first_responded_at IS NULL AND first_response_breached_at IS NULL "
                "AND first_response_due_at IS NOT NULL AND deleted_at IS NULL"
            ),
        ),
        Index(
            "ix_tickets_resolution_due_at",
            "resolution_due_at",
            postgresql_where=text(
                "resolved_at IS NULL AND resolution_breached_at IS NULL "
                "AND resolution_due_at IS NOT NULL AND deleted_at IS NULL"
            ),
        ),
    )

    subject: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    contact_id: Mapped[uuid.UUID]
    company_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(Text, default=None)
    category: Mapped[str | None] = mapped_column(Text, default=None)
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    team_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    tags: Mapped[list[str]] = mapped_column(default=list, server_default="{}")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    sla_policy_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    first_response_due_at: Mapped[datetime | None] = mapped_column(default=None)
    resolution_due_at: Mapped[datetime | None] = mapped_column(default=None)
    first_responded_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    reopened_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The latest CSAT response about the ticket (feedback/service.py keeps it current).
    csat_feedback_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    csat_score: Mapped[int | None] = mapped_column(Integer, default=None)
    csat_comment: Mapped[str | None] = mapped_column(Text, default=None)
    csat_responded_at: Mapped[datetime | None] = mapped_column(default=None)
    # When ticket.sla_breached was emitted for each target: set once, so it is emitted once.
    first_response_breached_at: Mapped[datetime | None] = mapped_column(default=None)
    resolution_breached_at: Mapped[datetime | None] = mapped_column(default=None)
    search_text: Mapped[str] = mapped_column(
        Text, Computed("crm_fold(subject)", persisted=True), deferred=True
    )


class TicketComment(WorkspaceScopedMixin, Base):
    """A public reply (the customer sees it) or an internal note, by a user or the contact."""

    __tablename__ = "ticket_comments"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "ticket_id"],
            ["tickets.workspace_id", "tickets.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["workspace_id", "author_user_id"], ["users.workspace_id", "users.id"]
        ),
        ForeignKeyConstraint(
            ["workspace_id", "author_contact_id"], ["contacts.workspace_id", "contacts.id"]
        ),
        CheckConstraint(
            "(author_user_id IS NULL) <> (author_contact_id IS NULL)", name="one_author"
        ),
        CheckConstraint("kind IN ('reply', 'note')", name="kind"),
        CheckConstraint("kind = 'reply' OR author_user_id IS NOT NULL", name="notes_by_users"),
        Index(
            "ix_ticket_comments_workspace_id_ticket_id_created_at_id",
            "workspace_id",
            "ticket_id",
            "created_at",
            "id",
        ),
    )

    ticket_id: Mapped[uuid.UUID]
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    author_user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    author_contact_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(default=None)


class TicketStatusChange(WorkspaceScopedMixin, Base):
    """One status change of a ticket (from none when it was created)."""

    __tablename__ = "ticket_status_changes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "ticket_id"],
            ["tickets.workspace_id", "tickets.id"],
            ondelete="CASCADE",
        ),
        Index(
            "ix_ticket_status_changes_workspace_id_ticket_id_created_at_id",
            "workspace_id",
            "ticket_id",
            "created_at",
            "id",
        ),
    )

    ticket_id: Mapped[uuid.UUID]
    from_status: Mapped[str | None] = mapped_column(Text, default=None)
    to_status: Mapped[str] = mapped_column(Text)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)


register_constraint(
    "uq_sla_policies_workspace_id_external_id",
    409,
    ("body", "external_id"),
    "Another SLA policy already has this external_id.",
)
register_constraint(
    "uq_sla_policies_workspace_id_default",
    409,
    ("body", "is_default"),
    "Another policy became the default at the same time; retry.",
)
register_constraint(
    "uq_tickets_workspace_id_external_id",
    409,
    ("body", "external_id"),
    "Another ticket already has this external_id.",
)
register_constraint(
    "fk_tickets_workspace_id_contact_id_contacts", 422, ("body", "contact_id"), "No such contact."
)
register_constraint(
    "fk_tickets_workspace_id_company_id_companies", 422, ("body", "company_id"), "No such company."
)
register_constraint(
    "fk_tickets_workspace_id_assignee_id_users", 422, ("body", "assignee_id"), "No such user."
)
register_constraint(
    "fk_tickets_workspace_id_team_id_teams", 422, ("body", "team_id"), "No such team."
)
