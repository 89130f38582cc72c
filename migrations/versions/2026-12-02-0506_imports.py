"""imports: uploaded files waiting in chunks, their rejected rows; contacts found by phone

Revision ID: 196a8c5454ac
Revises: 67f46034939d
Create Date: 2026-12-02 05:06:27.031841+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "196a8c5454ac"
down_revision: str | None = "67f46034939d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("mapping", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("ignored_columns", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("api_key_id", sa.UUID(), nullable=True),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_processed", sa.Integer(), nullable=False),
        sa.Column("created_count", sa.Integer(), nullable=False),
        sa.Column("updated_count", sa.Integer(), nullable=False),
        sa.Column("unchanged_count", sa.Integer(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
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
        sa.CheckConstraint("format IN ('csv', 'ndjson')", name=op.f("ck_imports_format")),
        sa.CheckConstraint(
            "resource IN ('contacts', 'companies', 'orders')", name=op.f("ck_imports_resource")
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'cancelled')",
            name=op.f("ck_imports_status"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_imports_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id", name=op.f("pk_imports")),
    )
    op.create_index(
        "ix_imports_waiting",
        "imports",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.create_index(
        "ix_imports_workspace_id_created_at_id",
        "imports",
        ["workspace_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "import_chunks",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("import_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("rows", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id", "import_id"],
            ["imports.workspace_id", "imports.id"],
            name=op.f("fk_import_chunks_workspace_id_import_id_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "workspace_id", "import_id", "position", name=op.f("pk_import_chunks")
        ),
    )
    op.create_table(
        "import_errors",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("import_id", sa.UUID(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("errors", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("values", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id", "import_id"],
            ["imports.workspace_id", "imports.id"],
            name=op.f("fk_import_errors_workspace_id_import_id_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "import_id", "line", name=op.f("pk_import_errors")),
    )
    op.create_index(
        "ix_contacts_workspace_id_phone",
        "contacts",
        ["workspace_id", "phone"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_contacts_workspace_id_phone",
        table_name="contacts",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_table("import_errors")
    op.drop_table("import_chunks")
    op.drop_index("ix_imports_workspace_id_created_at_id", table_name="imports")
    op.drop_index(
        "ix_imports_waiting",
        table_name="imports",
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.drop_table("imports")
