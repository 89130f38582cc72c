"""Lead scoring: one set-up per workspace (fit and engagement rules, the model's weight), the
logistic regression models trained on its won and lost deals, and each contact's score with the
factors that make it up (beside its other metrics). Playbooks: one ordered document per
workspace of what to do for the customers of each segment.

Revision ID: 9c4d2e7f1b36
Revises: 7b3e9d1c5a20
Create Date: 2026-12-03 16:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "9c4d2e7f1b36"
down_revision: str | None = "7b3e9d1c5a20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURRENT_WORKSPACE = "NULLIF(current_setting('crm.workspace_id', true), '')::uuid"
NEW_TABLES = ("lead_score_models", "lead_scoring", "playbooks")


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def _workspace_key(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace_id"],
        ["workspaces.id"],
        name=op.f(f"fk_{table}_workspace_id_workspaces"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "lead_score_models",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("fit_rules", postgresql.JSONB(), nullable=False),
        sa.Column("engagement_rules", postgresql.JSONB(), nullable=False),
        sa.Column("features", postgresql.JSONB(), nullable=False),
        sa.Column("intercept", sa.Double(), nullable=False),
        sa.Column("l2_penalty", sa.Double(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("won", sa.Integer(), nullable=False),
        sa.Column("lost", sa.Integer(), nullable=False),
        sa.Column("auc", sa.Double(), nullable=True),
        sa.Column("log_loss", sa.Double(), nullable=False),
        sa.Column("converged", sa.Boolean(), nullable=False),
        sa.Column("iterations", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        *_timestamps(),
        _workspace_key("lead_score_models"),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_lead_score_models")),
    )
    op.create_index(
        "ix_lead_score_models_workspace_id_created_at_id",
        "lead_score_models",
        ["workspace_id", "created_at", "id"],
    )
    op.create_table(
        "lead_scoring",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("fit_rules", postgresql.JSONB(), nullable=False),
        sa.Column("engagement_rules", postgresql.JSONB(), nullable=False),
        sa.Column("use_model", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("model_weight", sa.Double(), server_default="0.5", nullable=False),
        sa.Column("model_id", sa.UUID(), nullable=True),
        sa.Column("event_sequence", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rescore_after_id", sa.UUID(), nullable=True),
        sa.Column("rescored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "model_weight >= 0 AND model_weight <= 1", name=op.f("ck_lead_scoring_model_weight")
        ),
        _workspace_key("lead_scoring"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "model_id"],
            ["lead_score_models.workspace_id", "lead_score_models.id"],
            name=op.f("fk_lead_scoring_workspace_id_model_id_lead_score_models"),
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_lead_scoring")),
    )
    op.create_table(
        "playbooks",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("playbooks", postgresql.JSONB(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        *_timestamps(),
        _workspace_key("playbooks"),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_playbooks")),
    )
    op.add_column("contact_metrics", sa.Column("lead_score", sa.SmallInteger(), nullable=True))
    op.add_column(
        "contact_metrics", sa.Column("lead_score_factors", postgresql.JSONB(), nullable=True)
    )
    op.add_column("contact_metrics", sa.Column("lead_score_model_id", sa.UUID(), nullable=True))
    op.add_column(
        "contact_metrics",
        sa.Column("lead_scored_at", sa.DateTime(timezone=True), nullable=True),
    )
    for table in NEW_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY workspace_isolation ON {table} TO crm_service "
            f"USING (workspace_id = {CURRENT_WORKSPACE}) "
            f"WITH CHECK (workspace_id = {CURRENT_WORKSPACE})"
        )


def downgrade() -> None:
    for column in ("lead_scored_at", "lead_score_model_id", "lead_score_factors", "lead_score"):
        op.drop_column("contact_metrics", column)
    op.drop_table("playbooks")
    op.drop_table("lead_scoring")
    op.drop_table("lead_score_models")
