import uuid
from collections.abc import Sequence

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.auth import Principal, generate_api_key, hash_api_key
from crm_api.core.db import new_id
from crm_api.core.errors import InvalidInput
from crm_api.core.records import apply_fields, get_or_404, list_records
from crm_api.core.roles import Role
from crm_api.core.scopes import Scope
from crm_api.users.service import ensure_assignable_owners
from crm_api.webhooks.events import emit
from crm_api.workspaces.models import ApiKey, Workspace
from crm_api.workspaces.repository import (
    API_KEY_ID_SORT,
    API_KEY_SORTS,
    ApiKeyRepository,
    WorkspaceRepository,
)
from crm_api.workspaces.schemas import (
    ApiKeyCreate,
    ApiKeyListParams,
    ApiKeyRead,
    WorkspaceRead,
    WorkspaceUpdate,
)


def _new_key(
    workspace_id: uuid.UUID,
    name: str,
    scopes: Sequence[Scope],
    user_id: uuid.UUID | None,
    role: Role | None,
) -> tuple[ApiKey, str]:
    secret = generate_api_key()
    key = ApiKey(
        id=new_id(),
        workspace_id=workspace_id,
        name=name,
        prefix=secret[:12],
        key_hash=hash_api_key(secret),
        role=role,
        scopes=sorted({str(s) for s in scopes}),
        user_id=user_id,
    )
    return key, secret


async def create_workspace(
    session: AsyncSession, name: str, *, default_country: str | None = None
) -> tuple[Workspace, ApiKey, str]:
    """A new workspace and its first admin key; the secret exists only in the return value."""
    workspace = Workspace(id=new_id(), name=name, default_country=default_country)
    WorkspaceRepository(session).add(workspace)
    await session.flush()
    key, secret = await issue_api_key(session, workspace.id, "admin", [Scope.admin])
    return workspace, key, secret


async def is_live_key(session: AsyncSession, workspace_id: uuid.UUID, secret: str) -> bool:
    """Whether `secret` is an unrevoked key of this workspace."""
    key = await ApiKeyRepository(session).get_by_hash(workspace_id, hash_api_key(secret))
    return key is not None


async def find_workspace(session: AsyncSession, name: str) -> Workspace | None:
    return await WorkspaceRepository(session).first_named(name)


async def issue_api_key(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    name: str,
    scopes: Sequence[Scope],
    user_id: uuid.UUID | None = None,
    *,
    role: Role | None = None,
) -> tuple[ApiKey, str]:
    """A new key of the workspace; the secret exists only in the return value."""
    key, secret = _new_key(workspace_id, name, scopes, user_id, role)
    ApiKeyRepository(session).add(key)
    await session.flush()
    emit(session, workspace_id, "api_key.created", ApiKeyRead.model_validate(key))
    return key, secret


async def create_api_key(
    session: AsyncSession, principal: Principal, data: ApiKeyCreate
) -> tuple[ApiKey, str]:
    if data.role is None and not data.scopes:
        raise InvalidInput(("body", "scopes"), "Give the key a role, scopes, or both.")
    await ensure_assignable_owners(session, principal, [data.user_id], "user_id")
    return await issue_api_key(
        session, principal.workspace_id, data.name, data.scopes, data.user_id, role=data.role
    )


async def list_api_keys(
    session: AsyncSession, principal: Principal, params: ApiKeyListParams
) -> tuple[list[ApiKey], str | None]:
    return await list_records(
        ApiKeyRepository(session),
        principal.workspace_id,
        params,
        [],
        API_KEY_SORTS,
        API_KEY_ID_SORT,
    )


async def get_api_key(session: AsyncSession, principal: Principal, id: uuid.UUID) -> ApiKey:
    return await get_or_404(ApiKeyRepository(session), principal.workspace_id, id, "API key")


async def revoke_api_key(session: AsyncSession, principal: Principal, id: uuid.UUID) -> None:
    key = await get_or_404(
        ApiKeyRepository(session), principal.workspace_id, id, "API key", for_update=True
    )
    key.revoked_at = func.now()
    await session.flush()
    await session.refresh(key, ["revoked_at"])
    emit(session, key.workspace_id, "api_key.deleted", ApiKeyRead.model_validate(key))


async def get_workspace(session: AsyncSession, principal: Principal) -> Workspace:
    workspace = await session.get(Workspace, principal.workspace_id)
    assert workspace is not None  # the key that called belongs to it
    return workspace


async def update_workspace(
    session: AsyncSession, principal: Principal, data: WorkspaceUpdate
) -> Workspace:
    workspace = await get_workspace(session, principal)
    sent = data.model_fields_set
    for field in ("name", "time_zone"):
        if field in sent and getattr(data, field) is None:
            raise InvalidInput(("body", field), f"A workspace always has its {field}.")
    changes = apply_fields(workspace, data, sent)
    if changes:
        workspace.updated_at = func.now()
        await session.flush()
        await session.refresh(workspace, ["updated_at"])
        read = WorkspaceRead.model_validate(workspace)
        emit(session, workspace.id, "workspace.updated", read, changes=changes)
    return workspace
