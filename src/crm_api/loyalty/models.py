"""A workspace's loyalty program (its earning rules, tiers and badges, as documents), each
contact's ledger of point entries and the account they add up to, and the badges awarded."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, TimestampMixin, WorkspaceScopedMixin

ENTRY_KINDS = ("earn", "redeem", "reverse", "expire", "adjust")


def _workspace() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE")


def _contact() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["workspace_id", "contact_id"], ["contacts.workspace_id", "contacts.id"]
    )


class LoyaltyProgram(TimestampMixin, Base):
    __tablename__ = "loyalty_programs"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id"),
        _workspace(),
        CheckConstraint("points_expire_after_days > 0", name="expiry"),
        CheckConstraint("tier_window_days > 0", name="window"),
    )

    workspace_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    points_expire_after_days: Mapped[int | None] = mapped_column(Integer, default=None)
    tier_window_days: Mapped[int] = mapped_column(Integer, default=365, server_default="365")
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    badges: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    # The last of the workspace's events the rules were applied to.
    event_sequence: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class LoyaltyAccount(TimestampMixin, Base):
    """What a contact's entries add up to, kept in the transaction that posts each entry, under
    this row's lock (so two redemptions cannot both spend the same points)."""

    __tablename__ = "loyalty_accounts"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id", "contact_id"),
        _workspace(),
        _contact(),
        Index(
            "ix_loyalty_accounts_workspace_id_lifetime_points",
            "workspace_id",
            text("lifetime_points DESC"),
            "contact_id",
        ),
        Index(
            "ix_loyalty_accounts_next_expiry_at",
            "next_expiry_at",
            postgresql_where=text("next_expiry_at IS NOT NULL"),
        ),
        Index(
            "ix_loyalty_accounts_next_tier_review_at",
            "next_tier_review_at",
            postgresql_where=text("next_tier_review_at IS NOT NULL"),
        ),
    )

    workspace_id: Mapped[uuid.UUID]
    contact_id: Mapped[uuid.UUID]
    balance: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Earned, net of reversals and adjustments; redemptions and expiry do not lower it.
    lifetime_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    tier_key: Mapped[str | None] = mapped_column(Text, default=None)
    tier_changed_at: Mapped[datetime | None] = mapped_column(default=None)
    # When the oldest unexpired points expire; when points next leave the tier window.
    next_expiry_at: Mapped[datetime | None] = mapped_column(default=None)
    next_tier_review_at: Mapped[datetime | None] = mapped_column(default=None)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class LoyaltyEntry(WorkspaceScopedMixin, Base):
    """One movement of points, never changed (a trigger refuses updates): earned by a rule for
    a source (an order, a survey answer, a contact), redeemed, reversed, expired or adjusted."""

    __tablename__ = "loyalty_entries"
    __table_args__ = (
        _contact(),
        ForeignKeyConstraint(
            ["workspace_id", "reverses_id"], ["loyalty_entries.workspace_id", "loyalty_entries.id"]
        ),
        CheckConstraint(f"kind IN {ENTRY_KINDS}", name="kind"),
        CheckConstraint(
            "points <> 0 AND (kind = 'adjust' OR (kind = 'earn') = (points > 0))", name="points"
        ),
        Index(
            "ix_loyalty_entries_workspace_id_contact_id_created_at_id",
            "workspace_id",
            "contact_id",
            "created_at",
            "id",
        ),
        Index(
            "ix_loyalty_entries_workspace_id_contact_id_earned_at",
            "workspace_id",
            "contact_id",
            "earned_at",
            postgresql_where=text("earned_at IS NOT NULL"),
        ),
        Index(
            "ix_loyalty_entries_workspace_id_earned_at",
            "workspace_id",
            "earned_at",
            postgresql_where=text("earned_at IS NOT NULL"),
        ),
        Index(
            "ix_loyalty_entries_workspace_id_source_id",
            "workspace_id",
            "source_type",
            "source_id",
            postgresql_where=text("source_id IS NOT NULL"),
        ),
        Index(
            "uq_loyalty_entries_earned_once",
            "workspace_id",
            "rule_key",
            "source_type",
            "source_id",
            unique=True,
            postgresql_where=text("kind = 'earn'"),
        ),
        Index(
            "uq_loyalty_entries_reversed_once",
            "workspace_id",
            "reverses_id",
            unique=True,
            postgresql_where=text("reverses_id IS NOT NULL"),
        ),
    )

    contact_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(Text)
    points: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text, default=None)
    rule_key: Mapped[str | None] = mapped_column(Text, default=None)
    source_type: Mapped[str | None] = mapped_column(Text, default=None)
    source_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    event_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    reverses_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    # Points count toward lifetime and tier from this time (a reversal: the reversed entry's).
    earned_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)


class LoyaltyBadgeAward(Base):
    __tablename__ = "loyalty_badge_awards"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id", "contact_id", "badge_key"),
        _workspace(),
        _contact(),
    )

    workspace_id: Mapped[uuid.UUID]
    contact_id: Mapped[uuid.UUID]
    badge_key: Mapped[str] = mapped_column(Text)
    # As the badge was named when awarded, so a badge taken out of the program still reads.
    name: Mapped[str] = mapped_column(Text)
    awarded_at: Mapped[datetime] = mapped_column(server_default=func.now())
