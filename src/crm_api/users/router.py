import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from crm_api.core.auth import Principal, require_scope
from crm_api.core.db import DbSession
from crm_api.core.errors import problem_responses
from crm_api.core.etag import IfMatchHeader, IfNoneMatchHeader, set_etag
from crm_api.core.idempotency import IdempotencyKey
from crm_api.core.openapi import links
from crm_api.core.pagination import set_link_header
from crm_api.core.responses import (
    ETAG_HEADER,
    LINK_HEADER,
    LOCATION_HEADER,
    created,
    not_modified,
    upserted,
)
from crm_api.core.routing import domain_router
from crm_api.core.schemas import ExternalId
from crm_api.core.scopes import Scope
from crm_api.users import service
from crm_api.users.schemas import (
    TeamCreate,
    TeamListParams,
    TeamPage,
    TeamRead,
    TeamUpdate,
    UserCreate,
    UserListParams,
    UserPage,
    UserRead,
    UserUpdate,
    UserUpsert,
)

router = domain_router("users")
teams_router = domain_router("teams")

Reader = Annotated[Principal, Depends(require_scope(Scope.users_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.users_write))]
USER_LINKS = links("user_id", "users_get", "users_update", "users_delete")
# An upsert's response also leads to the record by the external id in its path. (A
# created record's external id may change or be absent, so POST does not link by it.)
USER_UPSERT_LINKS = {
    **USER_LINKS,
    **links("external_id", "users_get_by_external_id", field="external_id"),
}
TEAM_LINKS = links("team_id", "teams_get", "teams_update", "teams_delete")
UserId = Annotated[uuid.UUID, Path(description="The user's id.")]
TeamId = Annotated[uuid.UUID, Path(description="The team's id.")]
ExternalIdPath = Annotated[ExternalId, Path(description="Your system's id for the user.")]


@router.get(
    "/users",
    response_model=UserPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List users",
)
async def users_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[UserListParams, Query()],
) -> UserPage:
    rows, next_cursor = await service.list_users(session, principal, params)
    set_link_header(request, response, next_cursor)
    return UserPage(data=[UserRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/users",
    status_code=201,
    response_model=UserRead,
    responses={
        201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": USER_LINKS},
        **problem_responses(409),
    },
    summary="Create a user",
)
async def users_create(
    request: Request,
    response: Response,
    data: UserCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> UserRead:
    user = await service.create_user(session, principal, data)
    created(response, user.version, str(request.url_for("users_get", user_id=user.id)))
    return UserRead.model_validate(user)


@router.get(
    "/users/external/{external_id}",
    response_model=UserRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404)},
    summary="Get a user by external id",
)
async def users_get_by_external_id(
    external_id: ExternalIdPath, response: Response, session: DbSession, principal: Reader
) -> UserRead:
    user = await service.get_user_by_external_id(session, principal, external_id)
    set_etag(response, user.version)
    return UserRead.model_validate(user)


@router.put(
    "/users/external/{external_id}",
    response_model=UserRead,
    responses={
        200: {"description": "Updated", "headers": ETAG_HEADER, "links": USER_UPSERT_LINKS},
        201: {
            "description": "Created",
            "headers": {**LOCATION_HEADER, **ETAG_HEADER},
            "links": USER_UPSERT_LINKS,
        },
        **problem_responses(409),
    },
    summary="Create or update a user by external id",
)
async def users_upsert(
    request: Request,
    response: Response,
    external_id: ExternalIdPath,
    data: UserUpsert,
    session: DbSession,
    principal: Writer,
) -> UserRead:
    user, was_created = await service.upsert_user(session, principal, external_id, data)
    location = str(request.url_for("users_get", user_id=user.id))
    upserted(response, user.version, location if was_created else None)
    return UserRead.model_validate(user)


@router.get(
    "/users/{user_id}",
    response_model=UserRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified"},
        **problem_responses(404),
    },
    summary="Get a user",
)
async def users_get(
    user_id: UserId,
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> UserRead | Response:
    user = await service.get_user(session, principal, user_id)
    if (unchanged := not_modified(if_none_match, user.version)) is not None:
        return unchanged
    set_etag(response, user.version)
    return UserRead.model_validate(user)


@router.patch(
    "/users/{user_id}",
    response_model=UserRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412)},
    summary="Update a user",
)
async def users_update(
    user_id: UserId,
    data: UserUpdate,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> UserRead:
    user = await service.update_user(session, principal, user_id, data, if_match)
    set_etag(response, user.version)
    return UserRead.model_validate(user)


@router.delete(
    "/users/{user_id}",
    status_code=204,
    responses=problem_responses(404, 409, 412),
    summary="Delete a user who owns nothing (409 lists what they still own)",
)
async def users_delete(
    user_id: UserId, session: DbSession, principal: Writer, if_match: IfMatchHeader = None
) -> Response:
    await service.delete_user(session, principal, user_id, if_match)
    return Response(status_code=204)


@teams_router.get(
    "/teams",
    response_model=TeamPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List teams",
)
async def teams_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[TeamListParams, Query()],
) -> TeamPage:
    rows, next_cursor = await service.list_teams(session, principal, params)
    set_link_header(request, response, next_cursor)
    return TeamPage(data=[TeamRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@teams_router.post(
    "/teams",
    status_code=201,
    response_model=TeamRead,
    responses={
        201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": TEAM_LINKS},
        **problem_responses(409),
    },
    summary="Create a team",
)
async def teams_create(
    request: Request,
    response: Response,
    data: TeamCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> TeamRead:
    team = await service.create_team(session, principal, data)
    created(response, team.version, str(request.url_for("teams_get", team_id=team.id)))
    return TeamRead.model_validate(team)


@teams_router.get(
    "/teams/{team_id}",
    response_model=TeamRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified"},
        **problem_responses(404),
    },
    summary="Get a team",
)
async def teams_get(
    team_id: TeamId,
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> TeamRead | Response:
    team = await service.get_team(session, principal, team_id)
    if (unchanged := not_modified(if_none_match, team.version)) is not None:
        return unchanged
    set_etag(response, team.version)
    return TeamRead.model_validate(team)


@teams_router.patch(
    "/teams/{team_id}",
    response_model=TeamRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412)},
    summary="Update a team",
)
async def teams_update(
    team_id: TeamId,
    data: TeamUpdate,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> TeamRead:
    team = await service.update_team(session, principal, team_id, data, if_match)
    set_etag(response, team.version)
    return TeamRead.model_validate(team)


@teams_router.delete(
    "/teams/{team_id}",
    status_code=204,
    responses=problem_responses(404, 412),
    summary="Delete a team; its users stay",
)
async def teams_delete(
    team_id: TeamId, session: DbSession, principal: Writer, if_match: IfMatchHeader = None
) -> Response:
    await service.delete_team(session, principal, team_id, if_match)
    return Response(status_code=204)
