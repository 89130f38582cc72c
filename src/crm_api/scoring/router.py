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
from crm_api.scoring import service
from crm_api.scoring.schemas import (
    LeadScoreModelListParams,
    LeadScoreModelPage,
    LeadScoreModelRead,
    LeadScoreRead,
    LeadScoringInput,
    LeadScoringRead,
)

router = domain_router("lead scoring")

Reader = Annotated[Principal, Depends(require_scope(Scope.scoring_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.scoring_write))]
ContactReader = Annotated[Principal, Depends(require_scope(Scope.contacts_read))]
SCORE = (
    "score = (1 - w) · (rule points held to 0..100) + w · 100 · P(won), w the model's weight "
    "(0 without a model); the factors beside it are whole points that add up to it."
)


@router.get(
    "/lead-scoring",
    response_model=LeadScoringRead,
    responses={**DOCUMENT_GET_RESPONSES, **problem_responses(404)},
    summary="Get the lead scoring set-up",
)
async def lead_scoring_get(
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> LeadScoringRead | Response:
    config = await service.get_config(session, principal)
    return document_read(response, if_none_match, config, LeadScoringRead)


@router.put(
    "/lead-scoring",
    response_model=LeadScoringRead,
    responses={**DOCUMENT_PUT_RESPONSES, **problem_responses(412)},
    summary="Create or replace the lead scoring set-up",
    description="Fit rules (filters over contacts), engagement rules (interactions in a window) "
    "and the model's weight. " + SCORE + " The worker scores every contact again after a "
    "change, and a contact within seconds of a change to it, its company, interactions, orders, "
    "feedback or tickets. Events: `lead_scoring.created`, `lead_scoring.updated`.",
)
async def lead_scoring_put(
    data: LeadScoringInput,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> LeadScoringRead:
    config, created = await service.put_config(session, principal, data, if_match)
    return document_put(response, config, created, LeadScoringRead)


@router.post(
    "/lead-scoring/models",
    status_code=201,
    response_model=LeadScoreModelRead,
    responses=problem_responses(404, 409),
    summary="Train a lead scoring model on the workspace's won and lost deals",
    description="A logistic regression of won against lost over the contacts of closed deals "
    "(at least 5 of each, else 409 `not-enough-history`), with the set-up's rules and the "
    "contact's activity as features, measured as of when each deal was decided. It scores from "
    "then on, and every contact is scored again. Event: `lead_score_model.created`.",
)
async def lead_score_models_create(
    session: DbSession, principal: Writer, _: Annotated[None, IdempotencyKey]
) -> LeadScoreModelRead:
    return LeadScoreModelRead.model_validate(await service.train_model(session, principal))


@router.get(
    "/lead-scoring/models",
    response_model=LeadScoreModelPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List lead scoring models, newest first",
)
async def lead_score_models_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[LeadScoreModelListParams, Query()],
) -> LeadScoreModelPage:
    rows, next_cursor = await service.list_models(session, principal, params)
    set_link_header(request, response, next_cursor)
    return LeadScoreModelPage(
        data=[LeadScoreModelRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/lead-scoring/models/{model_id}",
    response_model=LeadScoreModelRead,
    responses=problem_responses(404),
    summary="Get a lead scoring model",
)
async def lead_score_models_get(
    model_id: Annotated[uuid.UUID, Path()], session: DbSession, principal: Reader
) -> LeadScoreModelRead:
    return LeadScoreModelRead.model_validate(await service.get_model(session, principal, model_id))


@router.get(
    "/contacts/{contact_id}/lead-score",
    response_model=LeadScoreRead,
    responses=problem_responses(404),
    summary="Get a contact's lead score and what makes it up",
    description=SCORE + " Filters and segments use it as `metrics.lead_score`.",
)
async def contacts_lead_score_get(
    contact_id: Annotated[uuid.UUID, Path(description="The contact's id.")],
    session: DbSession,
    principal: ContactReader,
) -> LeadScoreRead:
    return await service.get_lead_score(session, principal, contact_id)
