import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from crm_api.core.auth import Principal, require_scope
from crm_api.core.db import DbSession
from crm_api.core.errors import problem_responses
from crm_api.core.etag import IfMatchHeader, IfNoneMatchHeader
from crm_api.core.idempotency import IdempotencyKey
from crm_api.core.pagination import set_link_header
from crm_api.core.responses import (
    DOCUMENT_GET_RESPONSES,
    DOCUMENT_PUT_RESPONSES,
    LINK_HEADER,
    document_put,
    document_read,
)
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.loyalty import service
from crm_api.loyalty.schemas import (
    AdjustmentCreate,
    Leaderboard,
    LeaderboardParams,
    LoyaltyAccountRead,
    LoyaltyEntryListParams,
    LoyaltyEntryPage,
    LoyaltyEntryRead,
    LoyaltyProgramInput,
    LoyaltyProgramRead,
    RedemptionCreate,
)

router = domain_router("loyalty")

Reader = Annotated[Principal, Depends(require_scope(Scope.loyalty_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.loyalty_write))]
ContactId = Annotated[uuid.UUID, Path(description="The contact's id.")]
EARNING = (
    "Points are earned by the program's rules, applied by the worker to the event feed within "
    "seconds of each change."
)


@router.get(
    "/loyalty/program",
    response_model=LoyaltyProgramRead,
    responses={**DOCUMENT_GET_RESPONSES, **problem_responses(404)},
    summary="Get the loyalty program",
)
async def loyalty_program_get(
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> LoyaltyProgramRead | Response:
    program = await service.get_program(session, principal)
    return document_read(response, if_none_match, program, LoyaltyProgramRead)


@router.put(
    "/loyalty/program",
    response_model=LoyaltyProgramRead,
    responses={**DOCUMENT_PUT_RESPONSES, **problem_responses(412)},
    summary="Create or replace the loyalty program",
    description="The whole program: earning rules, tiers and badges. " + EARNING + " Changed "
    "tiers or window: every account's tier is looked at again. Events: "
    "`loyalty_program.created`, `loyalty_program.updated`.",
)
async def loyalty_program_put(
    data: LoyaltyProgramInput,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> LoyaltyProgramRead:
    program, created = await service.put_program(session, principal, data, if_match)
    return document_put(response, program, created, LoyaltyProgramRead)


@router.get(
    "/loyalty/leaderboard",
    response_model=Leaderboard,
    summary="Rank contacts by points earned",
)
async def loyalty_leaderboard_get(
    session: DbSession, principal: Reader, params: Annotated[LeaderboardParams, Query()]
) -> Leaderboard:
    return await service.get_leaderboard(session, principal, params)


@router.get(
    "/contacts/{contact_id}/loyalty",
    response_model=LoyaltyAccountRead,
    responses=problem_responses(404),
    summary="Get a contact's points, tier and badges",
)
async def contacts_loyalty_get(
    contact_id: ContactId, session: DbSession, principal: Reader
) -> LoyaltyAccountRead:
    return await service.get_account(session, principal, contact_id)


@router.get(
    "/contacts/{contact_id}/loyalty/entries",
    response_model=LoyaltyEntryPage,
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
    summary="List a contact's points entries",
)
async def contacts_loyalty_entries_list(
    contact_id: ContactId,
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[LoyaltyEntryListParams, Query()],
) -> LoyaltyEntryPage:
    rows, next_cursor = await service.list_entries(session, principal, contact_id, params)
    set_link_header(request, response, next_cursor)
    return LoyaltyEntryPage(
        data=[LoyaltyEntryRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post(
    "/contacts/{contact_id}/loyalty/redemptions",
    status_code=201,
    response_model=LoyaltyEntryRead,
    responses=problem_responses(404, 409),
    summary="Redeem a contact's points",
    description="Takes the points from the balance, or 409 `insufficient-points` (with "
    "`balance` and `requested`) when it is short; concurrent redemptions never overdraw. Send "
    "an `Idempotency-Key` so a retry cannot redeem twice. Event: `loyalty_entry.created`.",
)
async def contacts_loyalty_redeem(
    contact_id: ContactId,
    data: RedemptionCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> LoyaltyEntryRead:
    entry = await service.redeem_points(session, principal, contact_id, data)
    return LoyaltyEntryRead.model_validate(entry)


@router.post(
    "/contacts/{contact_id}/loyalty/adjustments",
    status_code=201,
    response_model=LoyaltyEntryRead,
    responses=problem_responses(404, 409),
    summary="Add or take a contact's points by hand",
    description="Positive points count as earned (lifetime, tiers, expiry); taking more than "
    "the balance is 409 `insufficient-points`. Event: `loyalty_entry.created`.",
)
async def contacts_loyalty_adjust(
    contact_id: ContactId,
    data: AdjustmentCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> LoyaltyEntryRead:
    entry = await service.adjust_points(session, principal, contact_id, data)
    return LoyaltyEntryRead.model_validate(entry)
