"""Tenant isolation in PostgreSQL itself (migration 5b0f3c1d9e42): work done for a workspace runs
as the role `crm_service`, which owns no table, with the workspace named in the transaction, so
row-level security hides every other workspace's rows even from a query that forgets its filter.

Both settings are transaction-local: they end with the transaction, and the connection goes back
to the pool as the login role."""

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

SERVICE_ROLE = "crm_service"
# A member of crm_service that also carries the own-records policies (migration 9d2b7c4e1a08).
OWN_RECORDS_ROLE = "crm_own_records"

_ENTER = text(
    "SELECT set_config('role', :role, true), set_config('crm.workspace_id', :workspace_id, true), "
    "set_config('crm.owner_ids', :owner_ids, true)"
)
_LEAVE = text(
    "SELECT set_config('role', 'none', true), set_config('crm.workspace_id', '', true), "
    "set_config('crm.owner_ids', '', true)"
)


async def enter_workspace(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    owner_ids: frozenset[uuid.UUID] | None = None,
) -> None:
    """From here to the end of the transaction, the session sees this workspace's rows only;
    with `owner_ids`, only the contacts, deals and tickets these users own (as the role
    crm_own_records), and it can give them to no one else."""
    role, owners = SERVICE_ROLE, ""
    if owner_ids is not None:
        role, owners = OWN_RECORDS_ROLE, "{" + ",".join(sorted(map(str, owner_ids))) + "}"
    parameters = {"role": role, "workspace_id": str(workspace_id), "owner_ids": owners}
    await session.execute(_ENTER, parameters)


async def leave_workspace(session: AsyncSession) -> None:
    """Back to the login role before the transaction ends: for work after, that is the owner's
    (ANALYZE), and for a caller whose transaction this one is nested in (a savepoint), which
    would otherwise inherit the workspace, as SET LOCAL outlives the savepoint."""
    await session.execute(_LEAVE)
