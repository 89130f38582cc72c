"""The own-records rule under a role of its own, `crm_own_records` (a member of crm_service, so
every workspace policy holds for it too): only transactions of keys held to their records carry
its policy, so the planner sees no `owner_id` condition on everyone else's queries (whose
selectivity it cannot know, and which turned index scans in order into sorted scans).

Revision ID: 9d2b7c4e1a08
Revises: 6a4f0b8d2c13
Create Date: 2026-12-03 13:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9d2b7c4e1a08"
down_revision: str | None = "6a4f0b8d2c13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNED = {"contacts": "owner_id", "deals": "owner_id", "tickets": "assignee_id"}
OWNERS = "NULLIF(current_setting('crm.owner_ids', true), '')::uuid[]"


def _own_records(role: str, rule: str) -> None:
    for table, owner in OWNED.items():
        op.execute(f"DROP POLICY own_records ON {table}")
        op.execute(
            f"CREATE POLICY own_records ON {table} AS RESTRICTIVE TO {role} "
            f"USING ({rule.format(owner=owner)}) WITH CHECK ({rule.format(owner=owner)})"
        )


def upgrade() -> None:
    op.execute(
        """
DO $$
BEGIN
  CREATE ROLE crm_own_records NOLOGIN IN ROLE crm_service;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$"""
    )
    op.execute("GRANT crm_own_records TO CURRENT_USER")
    _own_records("crm_own_records", "{owner} = ANY (" + OWNERS + ")")


def downgrade() -> None:
    _own_records("crm_service", OWNERS + " IS NULL OR {owner} = ANY (" + OWNERS + ")")
