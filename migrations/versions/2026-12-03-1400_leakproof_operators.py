"""Under row-level security PostgreSQL uses an index for a query's condition only when the
condition's function is LEAKPROOF (else it could see rows the policy hides): LIKE on search
text, `@>` / `&&` on tags, `@>` / `?` on custom fields and crm_fold were not, so a search or a
tag filter walked the whole workspace (4 s at a million contacts, against 1 ms). None of them can
reveal a row's value (their only errors are about the pattern or the query's own argument), so
they are marked LEAKPROOF. Only a superuser may do that: migrating as another role, this step
says so and leaves them; a superuser can run this revision's statements later.

Revision ID: 4e8c1f6a2d97
Revises: 9d2b7c4e1a08
Create Date: 2026-12-03 14:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "4e8c1f6a2d97"
down_revision: str | None = "9d2b7c4e1a08"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = (
    "textlike(text, text)",
    "texticlike(text, text)",
    "arraycontains(anyarray, anyarray)",
    "arraycontained(anyarray, anyarray)",
    "arrayoverlap(anyarray, anyarray)",
    "jsonb_contains(jsonb, jsonb)",
    "jsonb_exists(jsonb, text)",
    "jsonb_exists_any(jsonb, text[])",
    "jsonb_exists_all(jsonb, text[])",
    "crm_fold(text)",
)


def _mark(leakproof: str) -> None:
    statements = "\n".join(f"    ALTER FUNCTION {f} {leakproof};" for f in FUNCTIONS)
    op.execute(
        f"""
DO $$
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
{statements}
  ELSE
    RAISE WARNING 'not a superuser: searches and tag filters stay unindexed under row-level '
      'security until a superuser marks their functions LEAKPROOF (revision 4e8c1f6a2d97)';
  END IF;
END $$"""
    )


def upgrade() -> None:
    _mark("LEAKPROOF")


def downgrade() -> None:
    _mark("NOT LEAKPROOF")
