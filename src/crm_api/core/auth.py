"""API keys → Principal; scope checks."""

import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Row, and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.db import DbSession
from crm_api.core.errors import Forbidden, Unauthenticated
from crm_api.core.scopes import Scope
from crm_api.core.tenancy import enter_workspace
from crm_api.users.models import User
from crm_api.workspaces.models import ApiKey, Workspace

API_KEY_PREFIX = "crm_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a workspace, through one of its API keys, with these scopes, maybe acting
    as one of its users."""

    workspace_id: uuid.UUID
    api_key_id: uuid.UUID
    scopes: frozenset[str]
    default_country: str | None = None
    user_id: uuid.UUID | None = None

    def has(self, scope: Scope) -> bool:
        if Scope.admin in self.scopes or scope in self.scopes:
            return True
        # A write scope implies reading the same resource.
        return scope.endswith(":read") and scope.replace(":read", ":write") in self.scopes


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(30)


def hash_api_key(key: str) -> str:
    # Keys are 240 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


# Built once: constructing a statement costs more than running this one. A key acting as a user
# works only while that user is live and active.
_LIVE_KEYS = (
    select(ApiKey.workspace_id, ApiKey.id, ApiKey.scopes, Workspace.default_country, ApiKey.user_id)
    .join(Workspace, Workspace.id == ApiKey.workspace_id)
    .outerjoin(User, and_(User.workspace_id == ApiKey.workspace_id, User.id == ApiKey.user_id))
    .where(
        ApiKey.revoked_at.is_(None),
        or_(ApiKey.user_id.is_(None), and_(User.deleted_at.is_(None), User.active.is_(True))),
    )
)
_KEY_LOOKUP = _LIVE_KEYS.where(ApiKey.key_hash == bindparam("key_hash"))
_KEY_BY_ID = _LIVE_KEYS.where(
    ApiKey.workspace_id == bindparam("workspace_id"), ApiKey.id == bindparam("id")
)


def _principal(
    row: Row[uuid.UUID, uuid.UUID, list[str], str | None, uuid.UUID | None],
) -> Principal:
    return Principal(
        workspace_id=row[0],
        api_key_id=row[1],
        scopes=frozenset(row[2]),
        default_country=row[3],
        user_id=row[4],
    )


async def principal_of_secret(session: AsyncSession, key: str) -> Principal | None:
    """Who an API key stands for; None when it is unknown or revoked, or its user inactive."""
    row = (await session.execute(_KEY_LOOKUP, {"key_hash": hash_api_key(key)})).one_or_none()
    return None if row is None else _principal(row)


async def principal_of_key(
    session: AsyncSession, workspace_id: uuid.UUID, api_key_id: uuid.UUID
) -> Principal | None:
    """Who a key stands for now, for work done later in its name (an import); None once the key
    is revoked or its user inactive."""
    parameters = {"workspace_id": workspace_id, "id": api_key_id}
    row = (await session.execute(_KEY_BY_ID, parameters)).one_or_none()
    return None if row is None else _principal(row)


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="BearerAuth",
    description="An API key of the workspace: `Authorization: Bearer crm_…`.",
)


async def authenticate(
    request: Request,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:

    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("Send an API key as `Authorization: Bearer <key>`.")
    principal = await principal_of_secret(session, credentials.credentials)
    if principal is None:
        raise Unauthenticated("The API key is unknown or revoked, or its user is inactive.")
    request.state.principal = principal
    if request.app.state.settings.row_level_security:
        await enter_workspace(session, principal.workspace_id)
        request.state.entered_workspace = True
    standing = await request.app.state.rate_limiter.take(principal.api_key_id)
    if standing is not None:
        request.state.rate_limit_headers = standing.headers()  # RequestContext sends them
    return principal


def require_scope(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.has(scope):
            raise Forbidden(f"This API key lacks the `{scope}` scope.", required_scope=scope)
        return principal

    return check
