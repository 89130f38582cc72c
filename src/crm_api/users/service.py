import uuid
from collections.abc import Sequence
from operator import attrgetter

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.core.auth import Principal
from crm_api.core.db import new_id
from crm_api.core.errors import Conflict, Forbidden, InvalidInput
from crm_api.core.hooks import deleted
from crm_api.core.patch import Changes
from crm_api.core.records import (
    apply_fields,
    bump_version,
    ensure_external_id_free,
    get_by_external_id_or_404,
    get_or_404,
    list_records,
    relink,
    soft_delete,
    upsert_by_external_id,
)
from crm_api.core.roles import OWN_RECORDS_ROLES
from crm_api.core.scopes import Scope
from crm_api.users.models import Team, TeamMember, User
from crm_api.users.repository import (
    TEAM_ID_SORT,
    TEAM_SORTS,
    USER_ID_SORT,
    USER_SORTS,
    TeamRepository,
    UserRepository,
)
from crm_api.users.schemas import (
    TeamCreate,
    TeamFields,
    TeamListParams,
    TeamRead,
    TeamUpdate,
    UserCreate,
    UserFields,
    UserListParams,
    UserRead,
    UserUpdate,
    UserUpsert,
)
from crm_api.webhooks.events import emit


class EmailTaken(Conflict):
    slug, title = "email-taken", "Email address taken"


class UserOwnsRecords(Conflict):
    slug, title = "user-owns-records", "User still owns records"


async def ensure_assignable_owners(
    session: AsyncSession,
    principal: Principal,
    owner_ids: Sequence[uuid.UUID | None],
    field: str = "owner_id",
) -> None:
    """Records may be given only to live, active users of the workspace (422 naming the field)."""
    wanted = {owner_id for owner_id in owner_ids if owner_id is not None}
    active = await UserRepository(session).active_ids(principal.workspace_id, list(wanted))
    for owner_id in sorted(wanted - active):
        raise InvalidInput(("body", field), f"No active user with id {owner_id}.")


def _announce_user(
    session: AsyncSession, action: str, user: User, changes: Changes | None = None
) -> None:
    emit(
        session, user.workspace_id, f"user.{action}", UserRead.model_validate(user), changes=changes
    )


def _announce_team(
    session: AsyncSession, action: str, team: Team, changes: Changes | None = None
) -> None:
    emit(
        session, team.workspace_id, f"team.{action}", TeamRead.model_validate(team), changes=changes
    )


async def _ensure_email_free(
    repository: UserRepository, principal: Principal, user: User | None, email: str | None
) -> None:
    if email is None:
        return
    holder = await repository.get_by_email(principal.workspace_id, email)
    if holder is not None and holder is not user:
        raise EmailTaken(
            f"{email} already belongs to user {holder.id}.",
            existing_id=str(holder.id),
            errors=[{"loc": ["body", "email"], "msg": "address taken", "type": "email_taken"}],
        )


_FLAGS = {"active", "own_records_only"}
_GRANTS = {"role", "own_records_only"}


def _check_grants(principal: Principal, data: UserFields) -> None:
    if _GRANTS & data.model_fields_set and not principal.has(Scope.admin):
        raise Forbidden(
            "Only an admin key sets a user's role or own_records_only.", required_scope="admin"
        )


def _check_own_records(user: User) -> None:
    if user.own_records_only and user.role not in OWN_RECORDS_ROLES:
        raise InvalidInput(
            ("body", "own_records_only"),
            "Only sales and support users can be held to their own records.",
        )


def _new_user(principal: Principal, data: UserFields, external_id: str | None) -> User:
    _check_grants(principal, data)
    user = User(id=new_id(), workspace_id=principal.workspace_id, external_id=external_id)
    apply_fields(user, data, data.model_fields_set - _FLAGS)
    user.active = data.active is not False
    user.own_records_only = data.own_records_only is True
    _check_own_records(user)
    return user


def _apply_user(principal: Principal, user: User, data: UserFields) -> Changes:
    _check_grants(principal, data)
    for flag in _FLAGS & data.model_fields_set:
        if getattr(data, flag) is None:
            raise InvalidInput(("body", flag), f"`{flag}` is true or false, not null.")
    changes = apply_fields(user, data, data.model_fields_set)
    _check_own_records(user)
    return changes


async def create_user(session: AsyncSession, principal: Principal, data: UserCreate) -> User:
    repository = UserRepository(session)
    await ensure_external_id_free(repository, principal.workspace_id, data.external_id, "user")
    await _ensure_email_free(repository, principal, None, data.email)
    user = _new_user(principal, data, data.external_id)
    repository.add(user)
    await session.flush()
    _announce_user(session, "created", user)
    return user


async def get_user(session: AsyncSession, principal: Principal, id: uuid.UUID) -> User:
    return await get_or_404(UserRepository(session), principal.workspace_id, id, "user")


async def get_user_by_external_id(
    session: AsyncSession, principal: Principal, external_id: str
) -> User:
    return await get_by_external_id_or_404(
        UserRepository(session), principal.workspace_id, external_id, "user"
    )


async def list_users(
    session: AsyncSession, principal: Principal, params: UserListParams
) -> tuple[list[User], str | None]:
    repository = UserRepository(session)
    where = repository.list_filters(principal.workspace_id, params)
    return await list_records(
        repository, principal.workspace_id, params, where, USER_SORTS, USER_ID_SORT
    )


async def _save_user(session: AsyncSession, user: User, changes: Changes) -> None:
    bump_version(user, changes)
    await session.flush()
    if changes:
        _announce_user(session, "updated", user, changes)


async def update_user(
    session: AsyncSession,
    principal: Principal,
    id: uuid.UUID,
    data: UserUpdate,
    if_match: str | None,
) -> User:
    repository = UserRepository(session)
    user = await get_or_404(
        repository, principal.workspace_id, id, "user", for_update=True, if_match=if_match
    )
    if "external_id" in data.model_fields_set and data.external_id != user.external_id:
        await ensure_external_id_free(repository, principal.workspace_id, data.external_id, "user")
    if "email" in data.model_fields_set:
        await _ensure_email_free(repository, principal, user, data.email)
    await _save_user(session, user, _apply_user(principal, user, data))
    return user


async def upsert_user(
    session: AsyncSession, principal: Principal, external_id: str, data: UserUpsert
) -> tuple[User, bool]:
    repository = UserRepository(session)

    async def create() -> User:
        if data.name is None:
            raise InvalidInput(("body", "name"), "`name` is required to create a user.")
        await _ensure_email_free(repository, principal, None, data.email)
        user = _new_user(principal, data, external_id)
        repository.add(user)
        return user

    async def update(user: User) -> Changes:
        if "email" in data.model_fields_set:
            await _ensure_email_free(repository, principal, user, data.email)
        return _apply_user(principal, user, data)

    user, created, changes = await upsert_by_external_id(
        session, repository, principal.workspace_id, external_id, create, update
    )
    if created:
        await session.flush()
        _announce_user(session, "created", user)
    else:
        await _save_user(session, user, changes)
    return user, created


async def delete_user(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None
) -> None:
    """Only a user who owns nothing can be deleted: reassign their records first, or deactivate
    the user instead (they keep their records)."""
    repository = UserRepository(session)
    user = await get_or_404(
        repository, principal.workspace_id, id, "user", for_update=True, if_match=if_match
    )
    owned = await repository.owned_record_counts(principal.workspace_id, user.id)
    if owned:
        listed = ", ".join(f"{count} {kind}" for kind, count in sorted(owned.items()))
        raise UserOwnsRecords(
            f"The user still owns {listed}; give them to someone else, or set `active` to false.",
            owned=owned,
        )
    teams = await TeamRepository(session).of_member(principal.workspace_id, user.id)
    changed = [
        (team, _set_members(team, [m for m in team.member_ids if m != user.id])) for team in teams
    ]
    soft_delete(user)
    for team, changes in changed:
        bump_version(team, changes)
    await session.flush()
    _announce_user(session, "deleted", user)
    for team, changes in changed:
        _announce_team(session, "updated", team, changes)


def _set_members(team: Team, user_ids: Sequence[uuid.UUID]) -> Changes:
    def member(user_id: uuid.UUID) -> TeamMember:
        return TeamMember(workspace_id=team.workspace_id, team_id=team.id, user_id=user_id)

    old = team.member_ids
    members = relink(team.members, user_ids, attrgetter("user_id"), member)
    if members is None:
        return {}
    team.members = members
    return {"member_ids": (old, team.member_ids)}


async def _apply_team(
    session: AsyncSession, principal: Principal, team: Team, data: TeamFields
) -> Changes:
    fields = data.model_fields_set - {"member_ids"}
    changes = apply_fields(team, data, fields)
    if "member_ids" in data.model_fields_set:
        member_ids = data.member_ids or []
        live = await UserRepository(session).live_ids(principal.workspace_id, member_ids)
        for index, user_id in enumerate(member_ids):
            if user_id not in live:
                raise InvalidInput(("body", "member_ids", index), f"No user with id {user_id}.")
        changes |= _set_members(team, member_ids)
    return changes


async def create_team(session: AsyncSession, principal: Principal, data: TeamCreate) -> Team:
    repository = TeamRepository(session)
    await ensure_external_id_free(repository, principal.workspace_id, data.external_id, "team")
    team = Team(id=new_id(), workspace_id=principal.workspace_id, members=[])
    await _apply_team(session, principal, team, data)
    repository.add(team)
    await session.flush()
    _announce_team(session, "created", team)
    return team


async def get_team(session: AsyncSession, principal: Principal, id: uuid.UUID) -> Team:
    return await get_or_404(TeamRepository(session), principal.workspace_id, id, "team")


async def list_teams(
    session: AsyncSession, principal: Principal, params: TeamListParams
) -> tuple[list[Team], str | None]:
    repository = TeamRepository(session)
    where = repository.list_filters(principal.workspace_id, params)
    return await list_records(
        repository, principal.workspace_id, params, where, TEAM_SORTS, TEAM_ID_SORT
    )


async def update_team(
    session: AsyncSession,
    principal: Principal,
    id: uuid.UUID,
    data: TeamUpdate,
    if_match: str | None,
) -> Team:
    repository = TeamRepository(session)
    team = await get_or_404(
        repository, principal.workspace_id, id, "team", for_update=True, if_match=if_match
    )
    if "external_id" in data.model_fields_set and data.external_id != team.external_id:
        await ensure_external_id_free(repository, principal.workspace_id, data.external_id, "team")
    changes = await _apply_team(session, principal, team, data)
    bump_version(team, changes)
    await session.flush()
    if changes:
        _announce_team(session, "updated", team, changes)
    return team


async def delete_team(
    session: AsyncSession, principal: Principal, id: uuid.UUID, if_match: str | None
) -> None:
    team = await get_or_404(
        TeamRepository(session),
        principal.workspace_id,
        id,
        "team",
        for_update=True,
        if_match=if_match,
    )
    soft_delete(team)
    await session.flush()
    _announce_team(session, "deleted", team)
    await deleted(session, "team", principal.workspace_id, team.id)
