import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, Integer, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, WorkspaceScopedMixin

SEGMENT_KINDS = ("dynamic", "static")
LIVE = text("deleted_at IS NULL")


class Segment(WorkspaceScopedMixin, Base):
    """A set of contacts: those a filter selects (dynamic), or those put in by hand (static).
    Members are stored either way, so reading them is a plain index scan."""

    __tablename__ = "segments"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        CheckConstraint(f"kind IN {SEGMENT_KINDS}", name="kind"),
        CheckConstraint("(kind = 'dynamic') = (filter IS NOT NULL)", name="filter_of_dynamic"),
        Index(
            "ix_segments_workspace_id_created_at_id",
            "workspace_id",
            "created_at",
            "id",
            postgresql_where=LIVE,
        ),
        # The worker's scheduled refresh takes the dynamic segment refreshed longest ago.
        Index(
            "ix_segments_refreshed_at",
            "refreshed_at",
            postgresql_where=text("kind = 'dynamic' AND deleted_at IS NULL"),
        ),
    )

    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    kind: Mapped[str] = mapped_column(Text)
    filter: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True), default=None)
    member_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    refreshed_at: Mapped[datetime | None] = mapped_column(default=None)
    # Why the last refresh could not run (a custom field its filter names was deleted, say).
    refresh_error: Mapped[str | None] = mapped_column(Text, default=None)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class SegmentMember(Base):
    __tablename__ = "segment_members"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "segment_id"], ["segments.workspace_id", "segments.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["workspace_id", "contact_id"], ["contacts.workspace_id", "contacts.id"],
            ondelete="CASCADE",
        ),
        Index("ix_segment_members_workspace_id_contact_id", "workspace_id", "contact_id"),
    )  # fmt: skip

    workspace_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    segment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    added_at: Mapped[datetime] = mapped_column(server_default=func.now())


class StaleContact(Base):
    """A contact whose segments must be looked at again: it, its company, orders, feedback or
    tickets changed. Queued in the changing transaction, taken by the worker."""

    __tablename__ = "segment_stale_contacts"
    __table_args__ = (
        ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    queued_at: Mapped[datetime] = mapped_column(server_default=func.now())
