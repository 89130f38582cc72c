import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, TimestampMixin, WorkspaceScopedMixin, new_id
from crm_api.core.roles import ROLE_NAMES


class Workspace(TimestampMixin, Base):
    __tablename__ = "workspaces"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(Text)
    # ISO 3166 alpha-2 region used to read phone numbers written without a country code.
    default_country: Mapped[str | None] = mapped_column(Text, default=None)
    # IANA name: the day on which birthdays and anniversaries fall.
    time_zone: Mapped[str] = mapped_column(Text, default="UTC", server_default="UTC")


class ApiKey(WorkspaceScopedMixin, Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        Index("uq_api_keys_key_hash", "key_hash", unique=True),
        ForeignKeyConstraint(["workspace_id", "user_id"], ["users.workspace_id", "users.id"]),
        CheckConstraint(f"role IN {ROLE_NAMES}", name="role"),
    )

    name: Mapped[str] = mapped_column(Text)
    prefix: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(Text)
    # A role's scopes (core/roles.py), and these besides.
    role: Mapped[str | None] = mapped_column(Text, default=None)
    scopes: Mapped[list[str]] = mapped_column(default=list, server_default="{}")
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # The user the key acts as: its writes are attributed to them (stage history, deal owner).
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
