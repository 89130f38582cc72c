import uuid

from sqlalchemy import Boolean, CheckConstraint, ForeignKeyConstraint, Index, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_api.core.db import Base, RecordMixin
from crm_api.core.errors import register_constraint
from crm_api.core.roles import ROLE_NAMES

LIVE = text("deleted_at IS NULL")


class User(RecordMixin, Base):
    """A member of staff: owns contacts, companies and deals; an API key may act as one."""

    __tablename__ = "users"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        CheckConstraint(f"role IN {ROLE_NAMES}", name="role"),
        Index(
            "uq_users_workspace_id_external_id",
            "workspace_id",
            "external_id",
            unique=True,
            postgresql_where=LIVE,
        ),
        Index(
            "uq_users_workspace_id_email",
            "workspace_id",
            "email",
            unique=True,
            postgresql_where=LIVE,
        ),
        Index(
            "ix_users_workspace_id_created_at_id",
            "workspace_id",
            "created_at",
            "id",
            postgresql_where=LIVE,
        ),
        Index(
            "ix_users_workspace_id_name_id",
            "workspace_id",
            text("crm_fold(name)"),
            "id",
            postgresql_where=LIVE,
        ),
    )

    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text, default=None)
    title: Mapped[str | None] = mapped_column(Text, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    # What keys acting as the user may do at most (core/roles.py), and whether a sales or
    # support user sees only what they or their teams own.
    role: Mapped[str | None] = mapped_column(Text, default=None)
    own_records_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")


class Team(RecordMixin, Base):
    __tablename__ = "teams"
    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        Index(
            "uq_teams_workspace_id_external_id",
            "workspace_id",
            "external_id",
            unique=True,
            postgresql_where=LIVE,
        ),
        Index(
            "uq_teams_workspace_id_name",
            "workspace_id",
            text("crm_fold(name)"),
            unique=True,
            postgresql_where=LIVE,
        ),
        Index(
            "ix_teams_workspace_id_created_at_id",
            "workspace_id",
            "created_at",
            "id",
            postgresql_where=LIVE,
        ),
    )

    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    members: Mapped[list["TeamMember"]] = relationship(
        lazy="raise", order_by="TeamMember.user_id", cascade="all, delete-orphan"
    )

    @property
    def member_ids(self) -> list[uuid.UUID]:
        return [member.user_id for member in self.members]


class TeamMember(Base):
    __tablename__ = "team_members"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workspace_id", "team_id"], ["teams.workspace_id", "teams.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["workspace_id", "user_id"], ["users.workspace_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_team_members_workspace_id_user_id", "workspace_id", "user_id"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    team_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


register_constraint(
    "uq_users_workspace_id_external_id",
    409,
    ("body", "external_id"),
    "Another user already has this external_id.",
)
register_constraint(
    "uq_users_workspace_id_email", 409, ("body", "email"), "Another user has this email address."
)
register_constraint(
    "uq_teams_workspace_id_external_id",
    409,
    ("body", "external_id"),
    "Another team already has this external_id.",
)
register_constraint(
    "uq_teams_workspace_id_name", 409, ("body", "name"), "Another team has this name."
)
