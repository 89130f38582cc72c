"""segments (dynamic and static), their members and queue, and contact metrics computed for
every contact with orders, feedback or tickets

Revision ID: d0c585928a9c
Revises: a4321e01d9b3
Create Date: 2026-12-02 08:20:16.236948+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# What segments/metrics.py keeps current from now on, for what is there already.
BACKFILL_METRICS = """
INSERT INTO contact_metrics (workspace_id, contact_id, order_count, total_spent, first_order_at,
                             last_order_at, last_nps_score, open_ticket_count)
SELECT c.workspace_id, c.id, coalesce(o.n, 0), coalesce(o.spent, 0), o.first_at, o.last_at,
       f.score, coalesce(t.n, 0)
FROM contacts c
LEFT JOIN LATERAL (
    SELECT count(*) AS n, sum(total) AS spent, min(ordered_at) AS first_at,
           max(ordered_at) AS last_at
    FROM orders
    WHERE workspace_id = c.workspace_id AND contact_id = c.id AND status = 'paid'
      AND deleted_at IS NULL
) o ON true
LEFT JOIN LATERAL (
    SELECT score FROM feedback
    WHERE workspace_id = c.workspace_id AND contact_id = c.id AND kind = 'nps'
      AND deleted_at IS NULL
    ORDER BY responded_at DESC, id DESC LIMIT 1
) f ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS n FROM tickets
    WHERE workspace_id = c.workspace_id AND contact_id = c.id
      AND status IN ('new', 'open', 'pending') AND deleted_at IS NULL
) t ON true
WHERE EXISTS (SELECT 1 FROM orders WHERE workspace_id = c.workspace_id AND contact_id = c.id)
   OR EXISTS (SELECT 1 FROM feedback WHERE workspace_id = c.workspace_id AND contact_id = c.id)
   OR EXISTS (SELECT 1 FROM tickets WHERE workspace_id = c.workspace_id AND contact_id = c.id)
"""
revision: str = "d0c585928a9c"
down_revision: str | None = "a4321e01d9b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segment_stale_contacts",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("contact_id", sa.UUID(), nullable=False),
        sa.Column(
            "queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segment_stale_contacts_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "workspace_id", "contact_id", name=op.f("pk_segment_stale_contacts")
        ),
    )
    op.create_table(
        "segments",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("filter", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("member_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refresh_error", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(kind = 'dynamic') = (filter IS NOT NULL)", name=op.f("ck_segments_filter_of_dynamic")
        ),
        sa.CheckConstraint("kind IN ('dynamic', 'static')", name=op.f("ck_segments_kind")),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segments_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_segments")),
    )
    op.create_index(
        "ix_segments_refreshed_at",
        "segments",
        ["refreshed_at"],
        unique=False,
        postgresql_where=sa.text("kind = 'dynamic' AND deleted_at IS NULL"),
    )
    op.create_index(
        "ix_segments_workspace_id_created_at_id",
        "segments",
        ["workspace_id", "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "contact_metrics",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("contact_id", sa.UUID(), nullable=False),
        sa.Column("order_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_spent", sa.Numeric(), server_default="0", nullable=False),
        sa.Column("first_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_nps_score", sa.Integer(), nullable=True),
        sa.Column("open_ticket_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "contact_id"],
            ["contacts.workspace_id", "contacts.id"],
            name=op.f("fk_contact_metrics_workspace_id_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "contact_id", name=op.f("pk_contact_metrics")),
    )
    op.create_table(
        "segment_members",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("segment_id", sa.UUID(), nullable=False),
        sa.Column("contact_id", sa.UUID(), nullable=False),
        sa.Column(
            "added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "contact_id"],
            ["contacts.workspace_id", "contacts.id"],
            name=op.f("fk_segment_members_workspace_id_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "segment_id"],
            ["segments.workspace_id", "segments.id"],
            name=op.f("fk_segment_members_workspace_id_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "workspace_id", "segment_id", "contact_id", name=op.f("pk_segment_members")
        ),
    )
    op.create_index(
        "ix_segment_members_workspace_id_contact_id",
        "segment_members",
        ["workspace_id", "contact_id"],
        unique=False,
    )
    op.execute(BACKFILL_METRICS)


def downgrade() -> None:
    op.drop_index("ix_segment_members_workspace_id_contact_id", table_name="segment_members")
    op.drop_table("segment_members")
    op.drop_table("contact_metrics")
    op.drop_index(
        "ix_segments_workspace_id_created_at_id",
        table_name="segments",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_segments_refreshed_at",
        table_name="segments",
        postgresql_where=sa.text("kind = 'dynamic' AND deleted_at IS NULL"),
    )
    op.drop_table("segments")
    op.drop_table("segment_stale_contacts")
