"""Roles for API keys and users (core/roles.py), and the rule that holds a sales or support user
to the records they or their teams own: a restrictive policy on contacts, deals and tickets for
transactions that name owners in `crm.owner_ids` (none named: no restriction).

Revision ID: 8e1a6f2b4c70
Revises: 5b0f3c1d9e42
Create Date: 2026-12-03 10:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8e1a6f2b4c70"
down_revision: str | None = "5b0f3c1d9e42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES = ("admin", "manager", "sales", "support", "analyst", "integration")
OWNED = {"contacts": "owner_id", "deals": "owner_id", "tickets": "assignee_id"}
OWNERS = "NULLIF(current_setting('crm.owner_ids', true), '')::uuid[]"


def _role_check(table: str) -> None:
    listed = ", ".join(f"'{role}'" for role in ROLES)
    op.create_check_constraint(op.f(f"ck_{table}_role"), table, f"role IN ({listed})")


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("role", sa.Text(), nullable=True))
    op.alter_column("api_keys", "scopes", server_default="{}")
    op.add_column("users", sa.Column("role", sa.Text(), nullable=True))
    op.add_column(
        "users",
        sa.Column("own_records_only", sa.Boolean(), server_default="false", nullable=False),
    )
    _role_check("api_keys")
    _role_check("users")
    for table, owner in OWNED.items():
        op.execute(
            f"CREATE POLICY own_records ON {table} AS RESTRICTIVE TO crm_service "
            f"USING ({OWNERS} IS NULL OR {owner} = ANY ({OWNERS})) "
            f"WITH CHECK ({OWNERS} IS NULL OR {owner} = ANY ({OWNERS}))"
        )


def downgrade() -> None:
    for table in OWNED:
        op.execute(f"DROP POLICY own_records ON {table}")
    op.drop_constraint(op.f("ck_users_role"), "users")
    op.drop_constraint(op.f("ck_api_keys_role"), "api_keys")
    op.drop_column("users", "own_records_only")
    op.drop_column("users", "role")
    op.alter_column("api_keys", "scopes", server_default=None)
    op.drop_column("api_keys", "role")
