"""interactions on every channel; survey responses (NPS, CSAT), the latest CSAT shown on its ticket

Revision ID: e689b9879c7e
Revises: 14a69b1c5d23
Create Date: 2026-12-02 01:58:23.814861+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e689b9879c7e"
down_revision: str | None = "14a69b1c5d23"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "interactions",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("contact_id", sa.UUID(), nullable=True),
        sa.Column("company_id", sa.UUID(), nullable=True),
        sa.Column("deal_id", sa.UUID(), nullable=True),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column(
            "custom_fields",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=True),
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
            "channel IN ('email', 'call', 'meeting', 'chat', 'sms', 'social', 'note', 'visit')",
            name=op.f("ck_interactions_channel"),
        ),
        sa.CheckConstraint(
            "direction IN ('inbound', 'outbound')", name=op.f("ck_interactions_direction")
        ),
        sa.CheckConstraint(
            "contact_id IS NOT NULL OR company_id IS NOT NULL",
            name=op.f("ck_interactions_with_someone"),
        ),
        sa.CheckConstraint("duration_seconds >= 0", name=op.f("ck_interactions_duration_seconds")),
        sa.ForeignKeyConstraint(
            ["workspace_id", "company_id"],
            ["companies.workspace_id", "companies.id"],
            name=op.f("fk_interactions_workspace_id_company_id_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "contact_id"],
            ["contacts.workspace_id", "contacts.id"],
            name=op.f("fk_interactions_workspace_id_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "deal_id"],
            ["deals.workspace_id", "deals.id"],
            name=op.f("fk_interactions_workspace_id_deal_id_deals"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "user_id"],
            ["users.workspace_id", "users.id"],
            name=op.f("fk_interactions_workspace_id_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_interactions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_interactions")),
    )
    op.create_index(
        "ix_interactions_workspace_id_company_id_occurred_at",
        "interactions",
        ["workspace_id", "company_id", "occurred_at"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_interactions_workspace_id_contact_id_occurred_at",
        "interactions",
        ["workspace_id", "contact_id", "occurred_at"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_interactions_workspace_id_created_at_id",
        "interactions",
        ["workspace_id", "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_interactions_workspace_id_deal_id",
        "interactions",
        ["workspace_id", "deal_id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_interactions_workspace_id_occurred_at_id",
        "interactions",
        ["workspace_id", "occurred_at", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_interactions_workspace_id_user_id",
        "interactions",
        ["workspace_id", "user_id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "uq_interactions_workspace_id_external_id",
        "interactions",
        ["workspace_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "feedback",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("contact_id", sa.UUID(), nullable=False),
        sa.Column("ticket_id", sa.UUID(), nullable=True),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column(
            "custom_fields",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=True),
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
            "(kind = 'nps' AND score BETWEEN 0 AND 10) "
            "OR (kind = 'csat' AND score BETWEEN 1 AND 5)",
            name=op.f("ck_feedback_score"),
        ),
        sa.CheckConstraint(
            "channel IN ('email', 'sms', 'web', 'in_app', 'phone', 'chat')",
            name=op.f("ck_feedback_channel"),
        ),
        sa.CheckConstraint("kind IN ('nps', 'csat')", name=op.f("ck_feedback_kind")),
        sa.ForeignKeyConstraint(
            ["workspace_id", "contact_id"],
            ["contacts.workspace_id", "contacts.id"],
            name=op.f("fk_feedback_workspace_id_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "ticket_id"],
            ["tickets.workspace_id", "tickets.id"],
            name=op.f("fk_feedback_workspace_id_ticket_id_tickets"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_feedback_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_feedback")),
    )
    op.create_index(
        "ix_feedback_workspace_id_contact_id_responded_at",
        "feedback",
        ["workspace_id", "contact_id", "responded_at"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_feedback_workspace_id_created_at_id",
        "feedback",
        ["workspace_id", "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_feedback_workspace_id_responded_at_id",
        "feedback",
        ["workspace_id", "responded_at", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_feedback_workspace_id_ticket_id_responded_at",
        "feedback",
        ["workspace_id", "ticket_id", "responded_at"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "uq_feedback_workspace_id_external_id",
        "feedback",
        ["workspace_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.add_column("tickets", sa.Column("csat_feedback_id", sa.UUID(), nullable=True))
    op.add_column("tickets", sa.Column("csat_score", sa.Integer(), nullable=True))
    op.add_column("tickets", sa.Column("csat_comment", sa.Text(), nullable=True))
    op.add_column(
        "tickets", sa.Column("csat_responded_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("tickets", "csat_responded_at")
    op.drop_column("tickets", "csat_comment")
    op.drop_column("tickets", "csat_score")
    op.drop_column("tickets", "csat_feedback_id")
    op.drop_index(
        "uq_feedback_workspace_id_external_id",
        table_name="feedback",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_feedback_workspace_id_ticket_id_responded_at",
        table_name="feedback",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_feedback_workspace_id_responded_at_id",
        table_name="feedback",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_feedback_workspace_id_created_at_id",
        table_name="feedback",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_feedback_workspace_id_contact_id_responded_at",
        table_name="feedback",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_table("feedback")
    op.drop_index(
        "uq_interactions_workspace_id_external_id",
        table_name="interactions",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_interactions_workspace_id_user_id",
        table_name="interactions",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_interactions_workspace_id_occurred_at_id",
        table_name="interactions",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_interactions_workspace_id_deal_id",
        table_name="interactions",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_interactions_workspace_id_created_at_id",
        table_name="interactions",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_interactions_workspace_id_contact_id_occurred_at",
        table_name="interactions",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_interactions_workspace_id_company_id_occurred_at",
        table_name="interactions",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_table("interactions")
