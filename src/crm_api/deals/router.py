import uuid
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Response

from crm_api.core.auth import Principal, require_scope
from crm_api.core.batch import BatchUpsertResult
from crm_api.core.db import DbSession
from crm_api.core.errors import problem_responses
from crm_api.core.etag import IfMatchHeader, IfNoneMatchHeader, set_etag
from crm_api.core.filters import SearchParams
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
from crm_api.deals import service
from crm_api.deals.schemas import (
    DealBatchUpsert,
    DealCreate,
    DealListParams,
    DealPage,
    DealRead,
    DealStageChangePage,
    DealStageChangeRead,
    DealUpdate,
    DealUpsert,
    Forecast,
    ForecastParams,
    PipelineCreate,
    PipelineListParams,
    PipelinePage,
    PipelineRead,
    PipelineUpdate,
    RelatedDealListParams,
    StageCreate,
    StageHistoryParams,
    StageOrder,
    StageRead,
    StageUpdate,
)

pipelines_router = domain_router("pipelines")
router = domain_router("deals")

PipelineReader = Annotated[Principal, Depends(require_scope(Scope.pipelines_read))]
PipelineWriter = Annotated[Principal, Depends(require_scope(Scope.pipelines_write))]
Reader = Annotated[Principal, Depends(require_scope(Scope.deals_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.deals_write))]

PIPELINE_LINKS = links(
    "pipeline_id",
    "pipelines_get",
    "pipelines_update",
    "pipelines_delete",
    "pipelines_stages_create",
    "pipelines_stage_order_set",
)
STAGE_LINKS = {
    **links("pipeline_id", "pipelines_stages_get", field="pipeline_id"),
    **links(
        "stage_id", "pipelines_stages_get", "pipelines_stages_update", "pipelines_stages_delete"
    ),
}
DEAL_LINKS = links(
    "deal_id", "deals_get", "deals_update", "deals_delete", "deals_stage_history_list"
)
# An upsert's response also leads to the record by the external id in its path. (A
# created record's external id may change or be absent, so POST does not link by it.)
DEAL_UPSERT_LINKS = {
    **DEAL_LINKS,
    **links("external_id", "deals_get_by_external_id", field="external_id"),
}
PipelineId = Annotated[uuid.UUID, Path(description="The pipeline's id.")]
StageId = Annotated[uuid.UUID, Path(description="The stage's id.")]
DealId = Annotated[uuid.UUID, Path(description="The deal's id.")]
ExternalIdPath = Annotated[ExternalId, Path(description="Your system's id for the deal.")]


@pipelines_router.get(
    "/pipelines",
    response_model=PipelinePage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List pipelines, each with its stages",
)
async def pipelines_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: PipelineReader,
    params: Annotated[PipelineListParams, Query()],
) -> PipelinePage:
    rows, next_cursor = await service.list_pipelines(session, principal, params)
    set_link_header(request, response, next_cursor)
    return PipelinePage(
        data=[PipelineRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@pipelines_router.post(
    "/pipelines",
    status_code=201,
    response_model=PipelineRead,
    responses={
        201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": PIPELINE_LINKS},
        **problem_responses(409),
    },
    summary="Create a pipeline, with its stages",
)
async def pipelines_create(
    request: Request,
    response: Response,
    data: PipelineCreate,
    session: DbSession,
    principal: PipelineWriter,
    _: Annotated[None, IdempotencyKey],
) -> PipelineRead:
    pipeline = await service.create_pipeline(session, principal, data)
    location = str(request.url_for("pipelines_get", pipeline_id=pipeline.id))
    created(response, pipeline.version, location)
    return PipelineRead.model_validate(pipeline)


@pipelines_router.get(
    "/pipelines/{pipeline_id}",
    response_model=PipelineRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified"},
        **problem_responses(404),
    },
    summary="Get a pipeline and its stages",
)
async def pipelines_get(
    pipeline_id: PipelineId,
    response: Response,
    session: DbSession,
    principal: PipelineReader,
    if_none_match: IfNoneMatchHeader = None,
) -> PipelineRead | Response:
    pipeline = await service.get_pipeline(session, principal, pipeline_id)
    if (unchanged := not_modified(if_none_match, pipeline.version)) is not None:
        return unchanged
    set_etag(response, pipeline.version)
    return PipelineRead.model_validate(pipeline)


@pipelines_router.patch(
    "/pipelines/{pipeline_id}",
    response_model=PipelineRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412)},
    summary="Rename a pipeline",
)
async def pipelines_update(
    pipeline_id: PipelineId,
    data: PipelineUpdate,
    response: Response,
    session: DbSession,
    principal: PipelineWriter,
    if_match: IfMatchHeader = None,
) -> PipelineRead:
    pipeline = await service.update_pipeline(session, principal, pipeline_id, data, if_match)
    set_etag(response, pipeline.version)
    return PipelineRead.model_validate(pipeline)


@pipelines_router.delete(
    "/pipelines/{pipeline_id}",
    status_code=204,
    responses=problem_responses(404, 409, 412),
    summary="Delete a pipeline that holds no deals (409 otherwise)",
)
async def pipelines_delete(
    pipeline_id: PipelineId,
    session: DbSession,
    principal: PipelineWriter,
    if_match: IfMatchHeader = None,
) -> Response:
    await service.delete_pipeline(session, principal, pipeline_id, if_match)
    return Response(status_code=204)


@pipelines_router.put(
    "/pipelines/{pipeline_id}/stage-order",
    response_model=PipelineRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 412)},
    summary="Reorder a pipeline's stages",
)
async def pipelines_stage_order_set(
    pipeline_id: PipelineId,
    data: StageOrder,
    response: Response,
    session: DbSession,
    principal: PipelineWriter,
    if_match: IfMatchHeader = None,
) -> PipelineRead:
    pipeline = await service.reorder_stages(session, principal, pipeline_id, data, if_match)
    set_etag(response, pipeline.version)
    return PipelineRead.model_validate(pipeline)


@pipelines_router.post(
    "/pipelines/{pipeline_id}/stages",
    status_code=201,
    response_model=StageRead,
    responses={
        201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": STAGE_LINKS},
        **problem_responses(404),
    },
    summary="Add a stage to a pipeline",
)
async def pipelines_stages_create(
    request: Request,
    response: Response,
    pipeline_id: PipelineId,
    data: StageCreate,
    session: DbSession,
    principal: PipelineWriter,
    _: Annotated[None, IdempotencyKey],
) -> StageRead:
    stage = await service.create_stage(session, principal, pipeline_id, data)
    location = request.url_for("pipelines_stages_get", pipeline_id=pipeline_id, stage_id=stage.id)
    created(response, stage.version, str(location))
    return StageRead.model_validate(stage)


@pipelines_router.get(
    "/pipelines/{pipeline_id}/stages/{stage_id}",
    response_model=StageRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404)},
    summary="Get a stage",
)
async def pipelines_stages_get(
    pipeline_id: PipelineId,
    stage_id: StageId,
    response: Response,
    session: DbSession,
    principal: PipelineReader,
) -> StageRead:
    stage = await service.get_stage(session, principal, pipeline_id, stage_id)
    set_etag(response, stage.version)
    return StageRead.model_validate(stage)


@pipelines_router.patch(
    "/pipelines/{pipeline_id}/stages/{stage_id}",
    response_model=StageRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412)},
    summary="Update a stage (its kind only while it holds no deals)",
)
async def pipelines_stages_update(
    pipeline_id: PipelineId,
    stage_id: StageId,
    data: StageUpdate,
    response: Response,
    session: DbSession,
    principal: PipelineWriter,
    if_match: IfMatchHeader = None,
) -> StageRead:
    stage = await service.update_stage(session, principal, pipeline_id, stage_id, data, if_match)
    set_etag(response, stage.version)
    return StageRead.model_validate(stage)


@pipelines_router.delete(
    "/pipelines/{pipeline_id}/stages/{stage_id}",
    status_code=204,
    responses=problem_responses(404, 409, 412),
    summary="Delete a stage that holds no deals (409 otherwise)",
)
async def pipelines_stages_delete(
    pipeline_id: PipelineId,
    stage_id: StageId,
    session: DbSession,
    principal: PipelineWriter,
    if_match: IfMatchHeader = None,
) -> Response:
    await service.delete_stage(session, principal, pipeline_id, stage_id, if_match)
    return Response(status_code=204)


def _page(
    request: Request, response: Response, rows: list[Any], next_cursor: str | None
) -> DealPage:
    set_link_header(request, response, next_cursor)
    return DealPage(data=[DealRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/deals",
    response_model=DealPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List deals",
)
async def deals_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[DealListParams, Query()],
) -> DealPage:
    return _page(request, response, *await service.list_deals(session, principal, params))


@router.post(
    "/deals/search",
    response_model=DealPage,
    summary="Search deals with the filter language",
    description=service.SEARCH_DESCRIPTION,
)
async def deals_search(data: SearchParams, session: DbSession, principal: Reader) -> DealPage:
    rows, next_cursor = await service.search_deals(session, principal, data)
    return DealPage(data=[DealRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/deals",
    status_code=201,
    response_model=DealRead,
    responses={
        201: {"headers": {**LOCATION_HEADER, **ETAG_HEADER}, "links": DEAL_LINKS},
        **problem_responses(404, 409),
    },
    summary="Create a deal",
)
async def deals_create(
    request: Request,
    response: Response,
    data: DealCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> DealRead:
    deal = await service.create_deal(session, principal, data)
    created(response, deal.version, str(request.url_for("deals_get", deal_id=deal.id)))
    return DealRead.model_validate(deal)


@router.get(
    "/deals/forecast",
    response_model=Forecast,
    responses=problem_responses(404),
    summary="Open, weighted, won and lost amounts per month, owner or stage, per currency",
)
async def deals_forecast(
    session: DbSession, principal: Reader, params: Annotated[ForecastParams, Query()]
) -> Forecast:
    return await service.forecast(session, principal, params)


@router.post(
    "/deals/batch/upsert",
    response_model=BatchUpsertResult,
    summary="Create or update up to 1,000 deals by external id",
)
async def deals_batch_upsert(
    data: DealBatchUpsert,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> BatchUpsertResult:
    results = await service.batch_upsert_deals(session, principal, data.items)
    return BatchUpsertResult(results=results)


@router.get(
    "/deals/external/{external_id}",
    response_model=DealRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404)},
    summary="Get a deal by external id",
)
async def deals_get_by_external_id(
    external_id: ExternalIdPath, response: Response, session: DbSession, principal: Reader
) -> DealRead:
    deal = await service.get_deal_by_external_id(session, principal, external_id)
    set_etag(response, deal.version)
    return DealRead.model_validate(deal)


@router.put(
    "/deals/external/{external_id}",
    response_model=DealRead,
    responses={
        200: {"description": "Updated", "headers": ETAG_HEADER, "links": DEAL_UPSERT_LINKS},
        201: {
            "description": "Created",
            "headers": {**LOCATION_HEADER, **ETAG_HEADER},
            "links": DEAL_UPSERT_LINKS,
        },
        **problem_responses(404, 409),
    },
    summary="Create or update a deal by external id",
)
async def deals_upsert(
    request: Request,
    response: Response,
    external_id: ExternalIdPath,
    data: DealUpsert,
    session: DbSession,
    principal: Writer,
) -> DealRead:
    deal, was_created, _ = await service.upsert_deal(session, principal, external_id, data)
    location = str(request.url_for("deals_get", deal_id=deal.id))
    upserted(response, deal.version, location if was_created else None)
    return DealRead.model_validate(deal)


@router.get(
    "/deals/{deal_id}",
    response_model=DealRead,
    responses={
        200: {"headers": ETAG_HEADER},
        304: {"description": "Not modified"},
        **problem_responses(404),
    },
    summary="Get a deal",
)
async def deals_get(
    deal_id: DealId,
    response: Response,
    session: DbSession,
    principal: Reader,
    if_none_match: IfNoneMatchHeader = None,
) -> DealRead | Response:
    deal = await service.get_deal(session, principal, deal_id)
    if (unchanged := not_modified(if_none_match, deal.version)) is not None:
        return unchanged
    set_etag(response, deal.version)
    return DealRead.model_validate(deal)


@router.patch(
    "/deals/{deal_id}",
    response_model=DealRead,
    responses={200: {"headers": ETAG_HEADER}, **problem_responses(404, 409, 412)},
    summary="Update a deal, or move it to another stage",
)
async def deals_update(
    deal_id: DealId,
    data: DealUpdate,
    response: Response,
    session: DbSession,
    principal: Writer,
    if_match: IfMatchHeader = None,
) -> DealRead:
    deal = await service.update_deal(session, principal, deal_id, data, if_match)
    set_etag(response, deal.version)
    return DealRead.model_validate(deal)


@router.delete(
    "/deals/{deal_id}",
    status_code=204,
    responses=problem_responses(404, 412),
    summary="Delete a deal",
)
async def deals_delete(
    deal_id: DealId, session: DbSession, principal: Writer, if_match: IfMatchHeader = None
) -> Response:
    await service.delete_deal(session, principal, deal_id, if_match)
    return Response(status_code=204)


@router.get(
    "/deals/{deal_id}/stage-history",
    response_model=DealStageChangePage,
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
    summary="Every stage a deal has been moved to, oldest first (sort=-changed_at: newest)",
)
async def deals_stage_history_list(
    deal_id: DealId,
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[StageHistoryParams, Query()],
) -> DealStageChangePage:
    rows, next_cursor = await service.list_stage_history(session, principal, deal_id, params)
    set_link_header(request, response, next_cursor)
    return DealStageChangePage(
        data=[DealStageChangeRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/contacts/{contact_id}/deals",
    response_model=DealPage,
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
    summary="List the deals a contact is on",
)
async def contacts_deals_list(
    contact_id: Annotated[uuid.UUID, Path(description="The contact's id.")],
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[RelatedDealListParams, Query()],
) -> DealPage:
    page = await service.list_contact_deals(session, principal, contact_id, params)
    return _page(request, response, *page)


@router.get(
    "/companies/{company_id}/deals",
    response_model=DealPage,
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
    summary="List a company's deals",
)
async def companies_deals_list(
    company_id: Annotated[uuid.UUID, Path(description="The company's id.")],
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[RelatedDealListParams, Query()],
) -> DealPage:
    page = await service.list_company_deals(session, principal, company_id, params)
    return _page(request, response, *page)
