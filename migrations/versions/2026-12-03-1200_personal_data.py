"""Erasure of a person: contacts.erased_at, and the one change the audit log allows, an
erasure blanking the values an entry recorded (in a transaction that says it erases).

Revision ID: 6a4f0b8d2c13
Revises: 3c7d2e9a1f55
Create Date: 2026-12-03 12:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6a4f0b8d2c13"
down_revision: str | None = "3c7d2e9a1f55"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ERASABLE = """
CREATE OR REPLACE FUNCTION crm_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('crm.erasure', true) = 'on' AND NEW.changes IS NULL
     AND (NEW.workspace_id, NEW.id, NEW.api_key_id, NEW.user_id, NEW.request_id,
          NEW.client_address, NEW.operation, NEW.resource, NEW.resource_id, NEW.action,
          NEW.event_id, NEW.created_at, NEW.updated_at)
         IS NOT DISTINCT FROM
         (OLD.workspace_id, OLD.id, OLD.api_key_id, OLD.user_id, OLD.request_id,
          OLD.client_address, OLD.operation, OLD.resource, OLD.resource_id, OLD.action,
          OLD.event_id, OLD.created_at, OLD.updated_at) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$
"""

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION crm_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$
"""


def upgrade() -> None:
    op.add_column("contacts", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(ERASABLE)
    op.execute("GRANT UPDATE (changes) ON audit_log TO crm_service")


def downgrade() -> None:
    op.execute("REVOKE UPDATE (changes) ON audit_log FROM crm_service")
    op.execute(APPEND_ONLY)
    op.drop_column("contacts", "erased_at")
