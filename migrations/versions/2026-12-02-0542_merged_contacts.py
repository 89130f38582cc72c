"""merged contacts: a tombstone points to the contact it was merged into

Revision ID: 9b5ac5372a99
Revises: 196a8c5454ac
Create Date: 2026-12-02 05:42:09.774594+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b5ac5372a99"
down_revision: str | None = "196a8c5454ac"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("contacts", sa.Column("merged_into_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_contacts_workspace_id_merged_into_id_contacts"),
        "contacts",
        "contacts",
        ["workspace_id", "merged_into_id"],
        ["workspace_id", "id"],
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_contacts_workspace_id_merged_into_id_contacts"), "contacts", type_="foreignkey"
    )
    op.drop_column("contacts", "merged_into_id")
