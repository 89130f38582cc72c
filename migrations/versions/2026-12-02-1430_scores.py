"""Scores per contact: RFM in every CLV run's customers (none for runs made before), and
the latest workspace-wide run's CLV, P(alive) and RFM on contact_metrics, for `metrics.*`
filters

Revision ID: c29d8e70f37f
Revises: 638986398e9f
Create Date: 2026-12-02 14:30:34.365238+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c29d8e70f37f"
down_revision: str | None = "638986398e9f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("clv_run_customers", sa.Column("rfm_recency", sa.Integer(), nullable=True))
    op.add_column("clv_run_customers", sa.Column("rfm_frequency", sa.Integer(), nullable=True))
    op.add_column("clv_run_customers", sa.Column("rfm_monetary", sa.Double(), nullable=True))
    op.add_column(
        "clv_run_customers", sa.Column("rfm_recency_score", sa.SmallInteger(), nullable=True)
    )
    op.add_column(
        "clv_run_customers", sa.Column("rfm_frequency_score", sa.SmallInteger(), nullable=True)
    )
    op.add_column(
        "clv_run_customers", sa.Column("rfm_monetary_score", sa.SmallInteger(), nullable=True)
    )
    op.add_column("clv_run_customers", sa.Column("rfm_segment", sa.Text(), nullable=True))
    op.add_column("contact_metrics", sa.Column("predicted_clv", sa.Double(), nullable=True))
    op.add_column("contact_metrics", sa.Column("p_alive", sa.Double(), nullable=True))
    op.add_column("contact_metrics", sa.Column("expected_purchases", sa.Double(), nullable=True))
    op.add_column(
        "contact_metrics", sa.Column("rfm_recency_score", sa.SmallInteger(), nullable=True)
    )
    op.add_column(
        "contact_metrics", sa.Column("rfm_frequency_score", sa.SmallInteger(), nullable=True)
    )
    op.add_column(
        "contact_metrics", sa.Column("rfm_monetary_score", sa.SmallInteger(), nullable=True)
    )
    op.add_column("contact_metrics", sa.Column("rfm_segment", sa.Text(), nullable=True))
    op.add_column(
        "contact_metrics", sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("contact_metrics", sa.Column("clv_run_id", sa.UUID(), nullable=True))


def downgrade() -> None:
    op.drop_column("contact_metrics", "clv_run_id")
    op.drop_column("contact_metrics", "scored_at")
    op.drop_column("contact_metrics", "rfm_segment")
    op.drop_column("contact_metrics", "rfm_monetary_score")
    op.drop_column("contact_metrics", "rfm_frequency_score")
    op.drop_column("contact_metrics", "rfm_recency_score")
    op.drop_column("contact_metrics", "expected_purchases")
    op.drop_column("contact_metrics", "p_alive")
    op.drop_column("contact_metrics", "predicted_clv")
    op.drop_column("clv_run_customers", "rfm_segment")
    op.drop_column("clv_run_customers", "rfm_monetary_score")
    op.drop_column("clv_run_customers", "rfm_frequency_score")
    op.drop_column("clv_run_customers", "rfm_recency_score")
    op.drop_column("clv_run_customers", "rfm_monetary")
    op.drop_column("clv_run_customers", "rfm_frequency")
    op.drop_column("clv_run_customers", "rfm_recency")
