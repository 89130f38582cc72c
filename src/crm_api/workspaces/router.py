import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from crm_api.core.auth import Principal, authenticate, require_scope
from crm_api.core.db import DbSession
from crm_api.core.errors import problem_responses
from crm_api.core.idempotency import IdempotencyKey
from crm_api.core.openapi import links
from crm_api.core.pagination import set_link_header
from crm_api.core.responses import LINK_HEADER, LOCATION_HEADER
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.workspaces import service
from crm_api.workspaces.models import Workspace
from crm_api.workspaces.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyListParams,
    ApiKeyPage,
    ApiKeyRead,
    WorkspaceRead,
    WorkspaceUpdate,
)

router = domain_router("api-keys")
workspace_router = domain_router("workspace")

Admin = Annotated[Principal, Depends(require_scope(Scope.admin))]
ApiKeyId = Annotated[uuid.UUID, Path(description="The API key's id (not the secret).")]


@router.get(
    "/api-keys",
    response_model=ApiKeyPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List API keys",
)
async def api_keys_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Admin,
    params: Annotated[ApiKeyListParams, Query()],
) -> ApiKeyPage:
    rows, next_cursor = await service.list_api_keys(session, principal, params)
    set_link_header(request, response, next_cursor)
    return ApiKeyPage(data=[ApiKeyRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/api-keys",
    status_code=201,
    response_model=ApiKeyCreated,
    responses={
        201: {
            "headers": LOCATION_HEADER,
            "links": links("api_key_id", "api_keys_get", "api_keys_revoke"),
        }
    },
    summary="Create an API key; its secret is in this response only",
)
async def api_keys_create(
    request: Request,
    response: Response,
    data: ApiKeyCreate,
    session: DbSession,
    principal: Admin,
    _: Annotated[None, IdempotencyKey],
) -> ApiKeyCreated:
    key, secret = await service.create_api_key(session, principal, data)
    response.headers["Location"] = str(request.url_for("api_keys_get", api_key_id=key.id))
    return ApiKeyCreated.model_validate(
        {**ApiKeyRead.model_validate(key).model_dump(), "key": secret}
    )


@router.get(
    "/api-keys/{api_key_id}",
    response_model=ApiKeyRead,
    responses=problem_responses(404),
    summary="Get an API key",
)
async def api_keys_get(api_key_id: ApiKeyId, session: DbSession, principal: Admin) -> ApiKeyRead:
    return ApiKeyRead.model_validate(await service.get_api_key(session, principal, api_key_id))


@router.delete(
    "/api-keys/{api_key_id}",
    status_code=204,
    responses=problem_responses(404),
    summary="Revoke an API key",
)
async def api_keys_revoke(api_key_id: ApiKeyId, session: DbSession, principal: Admin) -> Response:
    await service.revoke_api_key(session, principal, api_key_id)
    return Response(status_code=204)


@workspace_router.get("/workspace", response_model=WorkspaceRead, summary="Get the key's workspace")
async def workspace_get(
    session: DbSession, principal: Annotated[Principal, Depends(authenticate)]
) -> Workspace:
    return await service.get_workspace(session, principal)


@workspace_router.patch(
    "/workspace",
    response_model=WorkspaceRead,
    summary="Update the workspace",
    description="Its name, default country (for phone numbers) and time zone (the day "
    "birthdays and anniversaries fall on). Event: `workspace.updated`.",
)
async def workspace_update(
    data: WorkspaceUpdate, session: DbSession, principal: Admin
) -> Workspace:
    return await service.update_workspace(session, principal, data)
