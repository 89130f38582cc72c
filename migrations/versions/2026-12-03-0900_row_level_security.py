"""Tenant isolation in PostgreSQL: every workspace table under row-level security for the role
`crm_service`, which owns nothing and sees only the rows of the workspace its transaction names
in the setting `crm.workspace_id` (none when unset). Requests run as that role once
authenticated (core/tenancy.py).

Revision ID: 5b0f3c1d9e42
Revises: c29d8e70f37f
Create Date: 2026-12-03 09:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5b0f3c1d9e42"
down_revision: str | None = "c29d8e70f37f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "crm_service"
# Unset or empty → NULL, which equals nothing: a transaction that names no workspace sees no row.
CURRENT_WORKSPACE = "NULLIF(current_setting('crm.workspace_id', true), '')::uuid"

WORKSPACE_TABLES = (
    "api_keys",
    "clv_run_customers",
    "clv_runs",
    "companies",
    "contact_emails",
    "contact_metrics",
    "contacts",
    "custom_field_definitions",
    "deal_contacts",
    "deal_stage_changes",
    "deals",
    "event_counters",
    "events",
    "feedback",
    "idempotency_records",
    "import_chunks",
    "import_errors",
    "imports",
    "interactions",
    "order_lines",
    "orders",
    "pipelines",
    "segment_members",
    "segment_stale_contacts",
    "segments",
    "sla_policies",
    "stages",
    "team_members",
    "teams",
    "ticket_comments",
    "ticket_status_changes",
    "tickets",
    "users",
    "webhook_deliveries",
    "webhook_delivery_attempts",
    "webhook_endpoints",
)


def upgrade() -> None:
    # Roles belong to the whole cluster, so other databases on it may have made this one.
    op.execute(
        f"""
DO $$
BEGIN
  CREATE ROLE {ROLE} NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$"""
    )
    # Whoever migrates (and the service connecting as them) may take the role on.
    op.execute(f"GRANT {ROLE} TO CURRENT_USER")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE}")
    op.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {ROLE}")
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {ROLE}"
    )
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {ROLE}"
    )
    op.execute(f"REVOKE ALL ON alembic_version FROM {ROLE}")
    for table in WORKSPACE_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY workspace_isolation ON {table} TO {ROLE} "
            f"USING (workspace_id = {CURRENT_WORKSPACE}) "
            f"WITH CHECK (workspace_id = {CURRENT_WORKSPACE})"
        )
    op.execute("ALTER TABLE workspaces ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY workspace_isolation ON workspaces TO {ROLE} "
        f"USING (id = {CURRENT_WORKSPACE}) WITH CHECK (id = {CURRENT_WORKSPACE})"
    )


def downgrade() -> None:
    for table in (*WORKSPACE_TABLES, "workspaces"):
        op.execute(f"DROP POLICY workspace_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {ROLE}")
    # The role stays: other databases of the cluster may use it.
