"""custom field definitions, and definitions inferred for the keys records already hold

Revision ID: a4321e01d9b3
Revises: 9b5ac5372a99
Create Date: 2026-12-02 07:54:39.239296+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

RESOURCES = ("contacts", "companies", "deals", "tickets", "orders", "interactions", "feedback")
# A key every live record holds as one JSON type (string, number or boolean) is defined as
# that type, so what is stored stays writable; other keys wait for a definition by hand.
INFER_DEFINITIONS = """
INSERT INTO custom_field_definitions (workspace_id, id, resource, key, label, type)
SELECT workspace_id, gen_random_uuid(), '{resource}', field.key, field.key,
       CASE min(jsonb_typeof(field.value))
           WHEN 'string' THEN 'text' WHEN 'number' THEN 'number' ELSE 'boolean' END
FROM {resource}, jsonb_each(custom_fields) AS field
WHERE deleted_at IS NULL AND field.key ~ '^[a-z][a-z0-9_]{{0,62}}$'
GROUP BY workspace_id, field.key
HAVING count(DISTINCT jsonb_typeof(field.value)) = 1
   AND min(jsonb_typeof(field.value)) IN ('string', 'number', 'boolean')
   AND coalesce(max(length(field.value #>> '{{}}')), 0) <= 10000
"""
revision: str = "a4321e01d9b3"
down_revision: str | None = "9b5ac5372a99"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "custom_field_definitions",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column(
            "options", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("required", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
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
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_custom_field_definitions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_custom_field_definitions")),
    )
    op.create_index(
        "uq_custom_field_definitions_workspace_id_resource_key",
        "custom_field_definitions",
        ["workspace_id", "resource", "key"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    for resource in RESOURCES:
        op.execute(INFER_DEFINITIONS.format(resource=resource))


def downgrade() -> None:
    op.drop_index(
        "uq_custom_field_definitions_workspace_id_resource_key",
        table_name="custom_field_definitions",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_table("custom_field_definitions")
