import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from crm_api.core.auth import Principal, require_scope
from crm_api.core.db import DbSession
from crm_api.core.errors import problem_responses
from crm_api.core.pagination import set_link_header
from crm_api.core.responses import LINK_HEADER
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.timeline import service
from crm_api.timeline.schemas import TimelinePage, TimelineParams

router = domain_router("timeline")

DESCRIPTION = (
    "Interactions, tickets and their comments, deals and their stage moves, orders and survey "
    "responses, merged in time order, newest first. A key sees only the kinds it can read "
    "(`interactions:read`, `tickets:read`, `deals:read`, `orders:read`, `feedback:read`); "
    "403 if none."
)


@router.get(
    "/contacts/{contact_id}/timeline",
    response_model=TimelinePage,
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
    summary="A contact's timeline: everything that happened with them",
    description=DESCRIPTION,
)
async def contacts_timeline_list(
    contact_id: Annotated[uuid.UUID, Path(description="The contact's id.")],
    request: Request,
    response: Response,
    session: DbSession,
    principal: Annotated[Principal, Depends(require_scope(Scope.contacts_read))],
    params: Annotated[TimelineParams, Query()],
) -> TimelinePage:
    data, next_cursor = await service.timeline(session, principal, "contact", contact_id, params)
    set_link_header(request, response, next_cursor)
    return TimelinePage(data=data, next_cursor=next_cursor)


@router.get(
    "/companies/{company_id}/timeline",
    response_model=TimelinePage,
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
    summary="A company's timeline, its contacts' survey responses included",
    description=DESCRIPTION,
)
async def companies_timeline_list(
    company_id: Annotated[uuid.UUID, Path(description="The company's id.")],
    request: Request,
    response: Response,
    session: DbSession,
    principal: Annotated[Principal, Depends(require_scope(Scope.companies_read))],
    params: Annotated[TimelineParams, Query()],
) -> TimelinePage:
    data, next_cursor = await service.timeline(session, principal, "company", company_id, params)
    set_link_header(request, response, next_cursor)
    return TimelinePage(data=data, next_cursor=next_cursor)
