"""Tenant isolation in PostgreSQL itself (migration 5b0f3c1d9e42): work done for a workspace runs
as the role `crm_service`, which owns no table, with the workspace named in the transaction, so
row-level security hides every other workspace's rows even from a query that forgets its filter.

Both settings are transaction-local: they end with the transaction, and the connection goes back
to the pool as the login role."""

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

SERVICE_ROLE = "crm_service"

_ENTER = text(
    "SELECT set_config('role', :role, true), set_config('crm.workspace_id', :workspace_id, true)"
).bindparams(role=SERVICE_ROLE)
_LEAVE = text("SELECT set_config('role', 'none', true), set_config('crm.workspace_id', '', true)")


async def enter_workspace(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    """From here to the end of the transaction, the session sees this workspace's rows only."""
    await session.execute(_ENTER, {"workspace_id": str(workspace_id)})


async def leave_workspace(session: AsyncSession) -> None:
    """Back to the login role before the transaction ends: a transaction nested in a caller's (a
    savepoint) would otherwise hand the workspace on to the caller, as SET LOCAL outlives it."""
    await session.execute(_LEAVE)
