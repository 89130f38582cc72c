"""API keys → Principal; scope checks."""

import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Row, and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.db import DbSession
from crm_api.core.errors import Forbidden, Unauthenticated
from crm_api.users.models import User
from crm_api.workspaces.models import ApiKey, Workspace

API_KEY_PREFIX = "crm_"


class Scope(StrEnum):
    admin = "admin"
    contacts_read = "contacts:read"
    contacts_write = "contacts:write"
    companies_read = "companies:read"
    companies_write = "companies:write"
    custom_fields_read = "custom_fields:read"
    custom_fields_write = "custom_fields:write"
    deals_read = "deals:read"
    deals_write = "deals:write"
    events_read = "events:read"
    feedback_read = "feedback:read"
    feedback_write = "feedback:write"
    imports_read = "imports:read"
    imports_write = "imports:write"
    interactions_read = "interactions:read"
    interactions_write = "interactions:write"
    metrics_read = "metrics:read"
    metrics_write = "metrics:write"
    orders_read = "orders:read"
    orders_write = "orders:write"
    pipelines_read = "pipelines:read"
    pipelines_write = "pipelines:write"
    segments_read = "segments:read"
    segments_write = "segments:write"
    sla_policies_read = "sla_policies:read"
    sla_policies_write = "sla_policies:write"
    tickets_read = "tickets:read"
    tickets_write = "tickets:write"
    users_read = "users:read"
    users_write = "users:write"
    webhooks_read = "webhooks:read"
    webhooks_write = "webhooks:write"


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
