"""tickets with comments and status history; SLA policies (targets per priority, business hours)

Revision ID: 14a69b1c5d23
Revises: d9342702eebf
Create Date: 2026-12-02 01:16:22.052345+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "14a69b1c5d23"
down_revision: str | None = "d9342702eebf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tickets the worker's breach scan reads (tickets/models.py).
AWAITING_FIRST_RESPONSE = (
    "first_responded_at IS NULL AND first_response_breached_at IS NULL "
    "AND first_response_due_at IS NOT NULL AND deleted_at IS NULL"
)
AWAITING_RESOLUTION = (
    "resolved_at IS NULL AND resolution_breached_at IS NULL "
    "AND resolution_due_at IS NOT NULL AND deleted_at IS NULL"
)


def upgrade() -> None:
    op.create_table(
        "sla_policies",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "targets", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("business_hours", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
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
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_sla_policies_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_sla_policies")),
    )
    op.create_index(
        "ix_sla_policies_workspace_id_created_at_id",
        "sla_policies",
        ["workspace_id", "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "uq_sla_policies_workspace_id_default",
        "sla_policies",
        ["workspace_id"],
        unique=True,
        postgresql_where=sa.text("is_default AND deleted_at IS NULL"),
    )
    op.create_index(
        "uq_sla_policies_workspace_id_external_id",
        "sla_policies",
        ["workspace_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "tickets",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("contact_id", sa.UUID(), nullable=False),
        sa.Column("company_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("assignee_id", sa.UUID(), nullable=True),
        sa.Column("team_id", sa.UUID(), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column(
            "custom_fields",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("sla_policy_id", sa.UUID(), nullable=True),
        sa.Column("first_response_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reopened_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("first_response_breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "search_text",
            sa.Text(),
            sa.Computed("crm_fold(subject)", persisted=True),
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
            "channel IN ('email', 'phone', 'chat', 'web', 'social', 'in_person')",
            name=op.f("ck_tickets_channel"),
        ),
        sa.CheckConstraint(
            "priority IN ('low', 'normal', 'high', 'urgent')", name=op.f("ck_tickets_priority")
        ),
        sa.CheckConstraint(
            "status IN ('new', 'open', 'pending', 'resolved', 'closed')",
            name=op.f("ck_tickets_status"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "assignee_id"],
            ["users.workspace_id", "users.id"],
            name=op.f("fk_tickets_workspace_id_assignee_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "company_id"],
            ["companies.workspace_id", "companies.id"],
            name=op.f("fk_tickets_workspace_id_company_id_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "contact_id"],
            ["contacts.workspace_id", "contacts.id"],
            name=op.f("fk_tickets_workspace_id_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "sla_policy_id"],
            ["sla_policies.workspace_id", "sla_policies.id"],
            name=op.f("fk_tickets_workspace_id_sla_policy_id_sla_policies"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "team_id"],
            ["teams.workspace_id", "teams.id"],
            name=op.f("fk_tickets_workspace_id_team_id_teams"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_tickets_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_tickets")),
    )
    op.create_index(
        "ix_tickets_first_response_due_at",
        "tickets",
        ["first_response_due_at"],
        unique=False,
        postgresql_where=sa.text(AWAITING_FIRST_RESPONSE),
    )
    op.create_index(
        "ix_tickets_resolution_due_at",
        "tickets",
        ["resolution_due_at"],
        unique=False,
        postgresql_where=sa.text(AWAITING_RESOLUTION),
    )
    op.create_index(
        "ix_tickets_search_text",
        "tickets",
        ["search_text"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_tickets_tags",
        "tickets",
        ["tags"],
        unique=False,
        postgresql_using="gin",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_tickets_workspace_id_assignee_id",
        "tickets",
        ["workspace_id", "assignee_id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_tickets_workspace_id_company_id",
        "tickets",
        ["workspace_id", "company_id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_tickets_workspace_id_contact_id",
        "tickets",
        ["workspace_id", "contact_id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_tickets_workspace_id_created_at_id",
        "tickets",
        ["workspace_id", "created_at", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_tickets_workspace_id_status_created_at",
        "tickets",
        ["workspace_id", "status", "created_at"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_tickets_workspace_id_team_id",
        "tickets",
        ["workspace_id", "team_id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_tickets_workspace_id_updated_at_id",
        "tickets",
        ["workspace_id", "updated_at", "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "uq_tickets_workspace_id_external_id",
        "tickets",
        ["workspace_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "ticket_comments",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("ticket_id", sa.UUID(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("author_user_id", sa.UUID(), nullable=True),
        sa.Column("author_contact_id", sa.UUID(), nullable=True),
        sa.Column("api_key_id", sa.UUID(), nullable=True),
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
            "kind = 'reply' OR author_user_id IS NOT NULL",
            name=op.f("ck_ticket_comments_notes_by_users"),
        ),
        sa.CheckConstraint("kind IN ('reply', 'note')", name=op.f("ck_ticket_comments_kind")),
        sa.CheckConstraint(
            "(author_user_id IS NULL) <> (author_contact_id IS NULL)",
            name=op.f("ck_ticket_comments_one_author"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "author_contact_id"],
            ["contacts.workspace_id", "contacts.id"],
            name=op.f("fk_ticket_comments_workspace_id_author_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "author_user_id"],
            ["users.workspace_id", "users.id"],
            name=op.f("fk_ticket_comments_workspace_id_author_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "ticket_id"],
            ["tickets.workspace_id", "tickets.id"],
            name=op.f("fk_ticket_comments_workspace_id_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_ticket_comments_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_ticket_comments")),
    )
    op.create_index(
        "ix_ticket_comments_workspace_id_ticket_id_created_at_id",
        "ticket_comments",
        ["workspace_id", "ticket_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "ticket_status_changes",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("ticket_id", sa.UUID(), nullable=False),
        sa.Column("from_status", sa.Text(), nullable=True),
        sa.Column("to_status", sa.Text(), nullable=False),
        sa.Column("api_key_id", sa.UUID(), nullable=True),
        sa.Column("user_id", sa.UUID(), nullable=True),
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
        sa.ForeignKeyConstraint(
            ["workspace_id", "ticket_id"],
            ["tickets.workspace_id", "tickets.id"],
            name=op.f("fk_ticket_status_changes_workspace_id_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_ticket_status_changes_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_ticket_status_changes")),
    )
    op.create_index(
        "ix_ticket_status_changes_workspace_id_ticket_id_created_at_id",
        "ticket_status_changes",
        ["workspace_id", "ticket_id", "created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_ticket_status_changes_workspace_id_ticket_id_created_at_id",
        table_name="ticket_status_changes",
    )
    op.drop_table("ticket_status_changes")
    op.drop_index(
        "ix_ticket_comments_workspace_id_ticket_id_created_at_id", table_name="ticket_comments"
    )
    op.drop_table("ticket_comments")
    op.drop_index(
        "uq_tickets_workspace_id_external_id",
        table_name="tickets",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_tickets_workspace_id_updated_at_id",
        table_name="tickets",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_tickets_workspace_id_team_id",
        table_name="tickets",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_tickets_workspace_id_status_created_at",
        table_name="tickets",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_tickets_workspace_id_created_at_id",
        table_name="tickets",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_tickets_workspace_id_contact_id",
        table_name="tickets",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_tickets_workspace_id_company_id",
        table_name="tickets",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_tickets_workspace_id_assignee_id",
        table_name="tickets",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_tickets_tags",
        table_name="tickets",
        postgresql_using="gin",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_tickets_search_text",
        table_name="tickets",
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_tickets_resolution_due_at",
        table_name="tickets",
        postgresql_where=sa.text(AWAITING_RESOLUTION),
    )
    op.drop_index(
        "ix_tickets_first_response_due_at",
        table_name="tickets",
        postgresql_where=sa.text(AWAITING_FIRST_RESPONSE),
    )
    op.drop_table("tickets")
    op.drop_index(
        "uq_sla_policies_workspace_id_external_id",
        table_name="sla_policies",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "uq_sla_policies_workspace_id_default",
        table_name="sla_policies",
        postgresql_where=sa.text("is_default AND deleted_at IS NULL"),
    )
    op.drop_index(
        "ix_sla_policies_workspace_id_created_at_id",
        table_name="sla_policies",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_table("sla_policies")
