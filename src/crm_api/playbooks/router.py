import uuid
from typing import Annotated

from fastapi import Depends, Path, Response

from crm_api.core.auth import Principal, require_scope
from crm_api.core.db import DbSession
from crm_api.core.errors import problem_responses
from crm_api.core.etag import IfMatchHeader, IfNoneMatchHeader
from crm_api.core.responses import (
    DOCUMENT_GET_RESPONSES,
    DOCUMENT_PUT_RESPONSES,
    document_put,
    document_read,
)
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.playbooks import service
from crm_api.playbooks.schemas import NextActions, PlaybooksInput, PlaybooksRead

router = domain_router("playbooks")

Reader = Annotated[Principal, Depends(require_scope(Scope.playbooks_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.playbooks_write))]
ContactReader = Annotated[Principal, Depends(require_scope(Scope.contacts_read))]


@router.get(
    "/playbooks",
    response_model=PlaybooksRead,
    responses={**DOCUMENT_GET_RESPONSES, **problem_responses(404)},
    summary="Get the playbooks",
)
async def playbooks_get(
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> PlaybooksRead | Response:
    playbooks = await service.get_playbooks(session, principal)
    return document_read(response, if_none_match, playbooks, PlaybooksRead)


@router.put(
    "/playbooks",
    response_model=PlaybooksRead,
    responses={**DOCUMENT_PUT_RESPONSES, **problem_responses(412)},
    summary="Create or replace the playbooks",
    description="What to do for the customers of each segment, in priority order: an offer, a "
    "message on a channel they consented to, a task for their owner. "
    "Events: `playbooks.created`, `playbooks.updated`.",
)
async def playbooks_put(
    data: PlaybooksInput,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> PlaybooksRead:
    playbooks, created = await service.put_playbooks(session, principal, data, if_match)
    return document_put(response, playbooks, created, PlaybooksRead)


@router.get(
    "/contacts/{contact_id}/next-actions",
    response_model=NextActions,
    responses=problem_responses(404),
    summary="What to do for a contact now",
    description="The active playbooks whose segment holds the contact and whose `when` filter "
    "selects it (RFM, P(alive), lead score, open tickets, …), in priority order. A message is "
    "suggested only on a channel whose consent is `granted` and for which the contact has an "
    "address; playbooks held back (a ticket open, or no channel allowed) are listed apart.",
)
async def contacts_next_actions_get(
    contact_id: Annotated[uuid.UUID, Path(description="The contact's id.")],
    session: DbSession,
    principal: ContactReader,
) -> NextActions:
    return await service.next_actions(session, principal, contact_id)
