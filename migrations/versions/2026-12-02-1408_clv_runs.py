"""CLV runs: the parameters of a predictive CLV computation, its fitted models, and one row
per customer

Revision ID: 638986398e9f
Revises: d0c585928a9c
Create Date: 2026-12-02 14:08:17.525214+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "638986398e9f"
down_revision: str | None = "d0c585928a9c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clv_runs",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("time_unit", sa.Text(), nullable=False),
        sa.Column("prediction_horizon", sa.Double(), nullable=False),
        sa.Column("clv_horizon_months", sa.Integer(), nullable=False),
        sa.Column("discount_rate_monthly", sa.Double(), nullable=False),
        sa.Column("segment_id", sa.UUID(), nullable=True),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column(
            "bgnbd", postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True
        ),
        sa.Column(
            "gamma_gamma", postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), nullable=True
        ),
        sa.Column("customers", sa.Integer(), nullable=True),
        sa.Column("returning_customers", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
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
            "status IN ('queued', 'succeeded', 'failed')", name=op.f("ck_clv_runs_status")
        ),
        sa.CheckConstraint(
            "time_unit IN ('day', 'week', 'month')", name=op.f("ck_clv_runs_time_unit")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "segment_id"],
            ["segments.workspace_id", "segments.id"],
            name=op.f("fk_clv_runs_workspace_id_segment_id_segments"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_clv_runs_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_clv_runs")),
    )
    op.create_index(
        "ix_clv_runs_queued",
        "clv_runs",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "ix_clv_runs_workspace_id_created_at_id",
        "clv_runs",
        ["workspace_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "clv_run_customers",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("contact_id", sa.UUID(), nullable=False),
        sa.Column("frequency", sa.Double(), nullable=False),
        sa.Column("recency", sa.Double(), nullable=False),
        sa.Column("age", sa.Double(), nullable=False),
        sa.Column("monetary_value", sa.Double(), nullable=False),
        sa.Column("historical_value", sa.Double(), nullable=False),
        sa.Column("expected_purchases", sa.Double(), nullable=False),
        sa.Column("p_alive", sa.Double(), nullable=False),
        sa.Column("expected_average_spend", sa.Double(), nullable=False),
        sa.Column("clv", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id", "contact_id"],
            ["contacts.workspace_id", "contacts.id"],
            name=op.f("fk_clv_run_customers_workspace_id_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "run_id"],
            ["clv_runs.workspace_id", "clv_runs.id"],
            name=op.f("fk_clv_run_customers_workspace_id_run_id_clv_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "workspace_id", "run_id", "contact_id", name=op.f("pk_clv_run_customers")
        ),
    )
    op.create_index(
        "ix_clv_run_customers_clv",
        "clv_run_customers",
        ["workspace_id", "run_id", "clv", "contact_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_clv_run_customers_clv", table_name="clv_run_customers")
    op.drop_table("clv_run_customers")
    op.drop_index("ix_clv_runs_workspace_id_created_at_id", table_name="clv_runs")
    op.drop_index(
        "ix_clv_runs_queued", table_name="clv_runs", postgresql_where=sa.text("status = 'queued'")
    )
    op.drop_table("clv_runs")
