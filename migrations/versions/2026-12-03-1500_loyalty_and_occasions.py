"""Loyalty: one program per workspace (its earning rules, tiers and badges), an append-only points
ledger per contact with the account it adds up to, and the badges awarded. Contacts may name who
referred them; workspaces have a time zone; each contact's birthday and customer anniversary is
announced once a year (contact_occasions remembers which were).

Revision ID: 7b3e9d1c5a20
Revises: 4e8c1f6a2d97
Create Date: 2026-12-03 15:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7b3e9d1c5a20"
down_revision: str | None = "4e8c1f6a2d97"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURRENT_WORKSPACE = "NULLIF(current_setting('crm.workspace_id', true), '')::uuid"
NEW_TABLES = ("loyalty_programs", "loyalty_accounts", "loyalty_entries", "loyalty_badge_awards")
ENTRY_KINDS = "('earn', 'redeem', 'reverse', 'expire', 'adjust')"

# An entry is never changed; a merge may only move entries to the contact merged into.
APPEND_ONLY = """
CREATE FUNCTION crm_loyalty_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF to_jsonb(NEW) - 'contact_id' = to_jsonb(OLD) - 'contact_id' THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'the loyalty ledger is append-only' USING ERRCODE = 'insufficient_privilege';
END $$
"""
MONTH_DAY = "((EXTRACT(MONTH FROM birthday) * 100 + EXTRACT(DAY FROM birthday))::integer)"


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def _contact_key(table: str, column: str = "contact_id") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace_id", column],
        ["contacts.workspace_id", "contacts.id"],
        name=op.f(f"fk_{table}_workspace_id_{column}_contacts"),
    )


def _workspace_key(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace_id"],
        ["workspaces.id"],
        name=op.f(f"fk_{table}_workspace_id_workspaces"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.add_column(
        "workspaces", sa.Column("time_zone", sa.Text(), server_default="UTC", nullable=False)
    )
    op.add_column("contacts", sa.Column("referred_by_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_contacts_workspace_id_referred_by_id_contacts"),
        "contacts",
        "contacts",
        ["workspace_id", "referred_by_id"],
        ["workspace_id", "id"],
    )
    op.create_index(
        "ix_contacts_workspace_id_referred_by_id",
        "contacts",
        ["workspace_id", "referred_by_id"],
        postgresql_where=sa.text("referred_by_id IS NOT NULL"),
    )
    op.create_index(
        "ix_contacts_workspace_id_birthday_month_day",
        "contacts",
        ["workspace_id", sa.text(MONTH_DAY)],
        postgresql_where=sa.text("birthday IS NOT NULL AND deleted_at IS NULL"),
    )

    op.create_table(
        "loyalty_programs",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("points_expire_after_days", sa.Integer(), nullable=True),
        sa.Column("tier_window_days", sa.Integer(), server_default="365", nullable=False),
        sa.Column("rules", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("tiers", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("badges", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("event_sequence", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        *_timestamps(),
        sa.CheckConstraint("points_expire_after_days > 0", name=op.f("ck_loyalty_programs_expiry")),
        sa.CheckConstraint("tier_window_days > 0", name=op.f("ck_loyalty_programs_window")),
        _workspace_key("loyalty_programs"),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_loyalty_programs")),
    )
    op.create_table(
        "loyalty_accounts",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("contact_id", sa.UUID(), nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("lifetime_points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tier_key", sa.Text(), nullable=True),
        sa.Column("tier_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_expiry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_tier_review_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        *_timestamps(),
        _workspace_key("loyalty_accounts"),
        _contact_key("loyalty_accounts"),
        sa.PrimaryKeyConstraint("workspace_id", "contact_id", name=op.f("pk_loyalty_accounts")),
    )
    op.create_index(
        "ix_loyalty_accounts_workspace_id_lifetime_points",
        "loyalty_accounts",
        ["workspace_id", sa.text("lifetime_points DESC"), "contact_id"],
    )
    op.create_index(
        "ix_loyalty_accounts_next_expiry_at",
        "loyalty_accounts",
        ["next_expiry_at"],
        postgresql_where=sa.text("next_expiry_at IS NOT NULL"),
    )
    op.create_index(
        "ix_loyalty_accounts_next_tier_review_at",
        "loyalty_accounts",
        ["next_tier_review_at"],
        postgresql_where=sa.text("next_tier_review_at IS NOT NULL"),
    )
    op.create_table(
        "loyalty_entries",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("contact_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("rule_key", sa.Text(), nullable=True),
        sa.Column("source_type", sa.Text(), nullable=True),
        sa.Column("source_id", sa.UUID(), nullable=True),
        sa.Column("event_id", sa.UUID(), nullable=True),
        sa.Column("reverses_id", sa.UUID(), nullable=True),
        sa.Column("earned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("api_key_id", sa.UUID(), nullable=True),
        sa.Column("user_id", sa.UUID(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(f"kind IN {ENTRY_KINDS}", name=op.f("ck_loyalty_entries_kind")),
        sa.CheckConstraint(
            "points <> 0 AND (kind = 'adjust' OR (kind = 'earn') = (points > 0))",
            name=op.f("ck_loyalty_entries_points"),
        ),
        _workspace_key("loyalty_entries"),
        _contact_key("loyalty_entries"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "reverses_id"],
            ["loyalty_entries.workspace_id", "loyalty_entries.id"],
            name=op.f("fk_loyalty_entries_workspace_id_reverses_id_loyalty_entries"),
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_loyalty_entries")),
    )
    op.create_index(
        "ix_loyalty_entries_workspace_id_contact_id_created_at_id",
        "loyalty_entries",
        ["workspace_id", "contact_id", "created_at", "id"],
    )
    op.create_index(
        "ix_loyalty_entries_workspace_id_contact_id_earned_at",
        "loyalty_entries",
        ["workspace_id", "contact_id", "earned_at"],
        postgresql_where=sa.text("earned_at IS NOT NULL"),
    )
    op.create_index(
        "ix_loyalty_entries_workspace_id_earned_at",
        "loyalty_entries",
        ["workspace_id", "earned_at"],
        postgresql_where=sa.text("earned_at IS NOT NULL"),
    )
    op.create_index(
        "ix_loyalty_entries_workspace_id_source_id",
        "loyalty_entries",
        ["workspace_id", "source_type", "source_id"],
        postgresql_where=sa.text("source_id IS NOT NULL"),
    )
    # A rule earns once per source (order, response, contact); an entry is reversed once.
    op.create_index(
        "uq_loyalty_entries_earned_once",
        "loyalty_entries",
        ["workspace_id", "rule_key", "source_type", "source_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'earn'"),
    )
    op.create_index(
        "uq_loyalty_entries_reversed_once",
        "loyalty_entries",
        ["workspace_id", "reverses_id"],
        unique=True,
        postgresql_where=sa.text("reverses_id IS NOT NULL"),
    )
    op.create_table(
        "loyalty_badge_awards",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("contact_id", sa.UUID(), nullable=False),
        sa.Column("badge_key", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "awarded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        _workspace_key("loyalty_badge_awards"),
        _contact_key("loyalty_badge_awards"),
        sa.PrimaryKeyConstraint(
            "workspace_id", "contact_id", "badge_key", name=op.f("pk_loyalty_badge_awards")
        ),
    )
    op.create_table(
        "contact_occasions",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("contact_id", sa.UUID(), nullable=False),
        sa.Column("occasion", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column(
            "announced_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        _workspace_key("contact_occasions"),
        _contact_key("contact_occasions"),
        sa.PrimaryKeyConstraint(
            "workspace_id", "contact_id", "occasion", "year", name=op.f("pk_contact_occasions")
        ),
    )
    for table in (*NEW_TABLES, "contact_occasions"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY workspace_isolation ON {table} TO crm_service "
            f"USING (workspace_id = {CURRENT_WORKSPACE}) "
            f"WITH CHECK (workspace_id = {CURRENT_WORKSPACE})"
        )
    op.execute("REVOKE DELETE, TRUNCATE ON loyalty_entries FROM crm_service")
    op.execute(APPEND_ONLY)
    op.execute(
        "CREATE TRIGGER loyalty_entries_append_only BEFORE UPDATE ON loyalty_entries "
        "FOR EACH ROW EXECUTE FUNCTION crm_loyalty_entries_append_only()"
    )


def downgrade() -> None:
    op.drop_table("contact_occasions")
    op.drop_table("loyalty_badge_awards")
    op.drop_table("loyalty_entries")
    op.drop_table("loyalty_accounts")
    op.drop_table("loyalty_programs")
    op.execute("DROP FUNCTION crm_loyalty_entries_append_only()")
    op.drop_index("ix_contacts_workspace_id_birthday_month_day", table_name="contacts")
    op.drop_index("ix_contacts_workspace_id_referred_by_id", table_name="contacts")
    op.drop_constraint(
        op.f("fk_contacts_workspace_id_referred_by_id_contacts"), "contacts", type_="foreignkey"
    )
    op.drop_column("contacts", "referred_by_id")
    op.drop_column("workspaces", "time_zone")
