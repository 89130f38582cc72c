"""API keys → Principal; scope checks."""

import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Row, and_, bindparam, case, distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from crm_api.core.actors import Actor, act_for
from crm_api.core.db import DbSession
from crm_api.core.errors import Forbidden, Unauthenticated
from crm_api.core.roles import OWN_RECORDS_ROLES, ROLE_SCOPES, Role, allows, key_scopes, within
from crm_api.core.scopes import Scope
from crm_api.core.tenancy import enter_workspace
from crm_api.users.models import TeamMember, User
from crm_api.workspaces.models import ApiKey, Workspace

API_KEY_PREFIX = "crm_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a workspace, through one of its API keys, with these scopes (its role's
    and its own, within its user's role), maybe acting as one of its users; `owner_ids`, when
    set, are the users whose contacts, deals and tickets alone it may see."""

    workspace_id: uuid.UUID
    api_key_id: uuid.UUID
    scopes: frozenset[str]
    default_country: str | None = None
    user_id: uuid.UUID | None = None
    role: Role | None = None
    owner_ids: frozenset[uuid.UUID] | None = None

    def has(self, scope: Scope) -> bool:
        return allows(self.scopes, scope)

    def hold_to_own_records(self, record: Any, field: str) -> None:
        """A contact, deal or ticket written by a key held to its own records: made without an
        owner it becomes the key's user's; given to anyone outside the user's teams, 403. The
        database refuses the same (row-level security); this says why, and names the field."""
        if self.owner_ids is None:
            return
        owner = getattr(record, field)
        if owner is None:
            setattr(record, field, self.user_id)
        elif owner not in self.owner_ids:
            raise Forbidden(
                f"This key sees only its user's and their teams' records: `{field}` must be "
                "one of them.",
                errors=[{"loc": ["body", field], "msg": "not yours to give", "type": "forbidden"}],
            )


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(30)


def hash_api_key(key: str) -> str:
    # Keys are 240 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


_Mine = aliased(TeamMember)
_Mate = aliased(TeamMember)
# The user and everyone in a team with them, for a user held to their own records.
_OWNERS = (
    select(func.array_agg(distinct(_Mate.user_id)))
    .join(_Mine, and_(_Mine.workspace_id == _Mate.workspace_id, _Mine.team_id == _Mate.team_id))
    .where(_Mine.workspace_id == ApiKey.workspace_id, _Mine.user_id == ApiKey.user_id)
    .correlate(ApiKey)
    .scalar_subquery()
)

# Built once: constructing a statement costs more than running this one. A key acting as a user
# works only while that user is live and active.
_LIVE_KEYS = (
    select(
        ApiKey.workspace_id,
        ApiKey.id,
        ApiKey.scopes,
        Workspace.default_country,
        ApiKey.user_id,
        ApiKey.role,
        User.role,
        case((User.own_records_only, _OWNERS)),
        User.own_records_only,
    )
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


def _principal(row: Row[Any]) -> Principal:
    fields: tuple[Any, ...] = tuple(row)
    workspace_id, key_id, scopes, country, user_id, key_role, user_role, mates, own = fields
    role = Role(key_role) if key_role is not None else None
    granted = key_scopes(role, scopes)
    if user_role is not None:
        granted = within(granted, ROLE_SCOPES[Role(user_role)])
    owner_ids = None
    if own and user_role in OWN_RECORDS_ROLES:
        owner_ids = frozenset(mates or ()) | {user_id}
    return Principal(workspace_id, key_id, granted, country, user_id, role, owner_ids)


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
    if request.app.state.settings.audit_log:
        route = request.scope.get("route")
        client = request.client.host if request.client else None
        actor = Actor(
            principal.api_key_id,
            principal.user_id,
            getattr(request.state, "request_id", None),
            client,
            getattr(route, "name", None),
        )
        act_for(session, actor)
    # The own-records rule is row-level security too, so it holds whatever the setting.
    if request.app.state.settings.row_level_security or principal.owner_ids is not None:
        await enter_workspace(session, principal.workspace_id, principal.owner_ids)
        request.state.entered_workspace = True
    standing = await request.app.state.rate_limiter.take(principal.api_key_id, principal.role)
    if standing is not None:
        request.state.rate_limit_headers = standing.headers()  # RequestContext sends them
    return principal


def require_scope(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.has(scope):
            raise Forbidden(f"This API key lacks the `{scope}` scope.", required_scope=scope)
        return principal

    check.required_scope = scope  # type: ignore[attr-defined]  # for the API docs (core/openapi.py)
    return check
