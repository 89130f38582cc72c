import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from crm_api.analytics import service
from crm_api.analytics.schemas import (
    CLV_DEFINITIONS,
    NPS_DEFINITION,
    PIPELINE_DEFINITION,
    RETENTION_DEFINITION,
    RFM_DEFINITION,
    SUPPORT_DEFINITION,
    ClvCustomerListParams,
    ClvCustomerPage,
    ClvCustomerRead,
    ClvRunCreate,
    ClvRunPage,
    ClvRunRead,
    ClvSummary,
    ContactMetricsRead,
    NpsParams,
    NpsReport,
    OrderMetricsParams,
    PipelineParams,
    PipelineReport,
    RetentionParams,
    RetentionReport,
    RfmReport,
    SupportParams,
    SupportReport,
)
from crm_api.core.auth import Principal, require_scope
from crm_api.core.db import DbSession
from crm_api.core.errors import problem_responses
from crm_api.core.idempotency import IdempotencyKey
from crm_api.core.openapi import links
from crm_api.core.pagination import set_link_header
from crm_api.core.responses import LINK_HEADER, LOCATION_HEADER
from crm_api.core.routing import domain_router
from crm_api.core.schemas import ListParams
from crm_api.core.scopes import Scope

router = domain_router("metrics")

Reader = Annotated[Principal, Depends(require_scope(Scope.metrics_read))]
Writer = Annotated[Principal, Depends(require_scope(Scope.metrics_write))]
RunId = Annotated[uuid.UUID, Path(description="The run's id.")]
RUN_LINKS = links("run_id", "clv_runs_get", "clv_runs_customers")


@router.post(
    "/metrics/clv/runs",
    status_code=202,
    response_model=ClvRunRead,
    responses={202: {"headers": LOCATION_HEADER, "links": RUN_LINKS}, **problem_responses(404)},
    summary="Start a predictive CLV run",
    description="The worker fits the models and scores every customer in the background; "
    "follow `/v1/metrics/clv/runs/{id}` until its status is `succeeded` (or `failed`). "
    + CLV_DEFINITIONS,
)
async def clv_runs_create(
    request: Request,
    response: Response,
    data: ClvRunCreate,
    session: DbSession,
    principal: Writer,
    _: Annotated[None, IdempotencyKey],
) -> ClvRunRead:
    run = await service.create_clv_run(session, principal, data)
    response.headers["Location"] = str(request.url_for("clv_runs_get", run_id=run.id))
    return ClvRunRead.model_validate(run)


@router.get(
    "/metrics/clv/runs",
    response_model=ClvRunPage,
    responses={200: {"headers": LINK_HEADER}},
    summary="List CLV runs, newest first",
)
async def clv_runs_list(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Reader,
    params: Annotated[ListParams, Query()],
) -> ClvRunPage:
    rows, next_cursor = await service.list_clv_runs(session, principal, params)
    set_link_header(request, response, next_cursor)
    return ClvRunPage(data=[ClvRunRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/metrics/clv/runs/{run_id}",
    response_model=ClvRunRead,
    responses={200: {"links": RUN_LINKS}, **problem_responses(404)},
    summary="Get a CLV run: its status, fitted models and diagnostics",
)
async def clv_runs_get(run_id: RunId, session: DbSession, principal: Reader) -> ClvRunRead:
    return ClvRunRead.model_validate(await service.get_clv_run(session, principal, run_id))


@router.get(
    "/metrics/clv/runs/{run_id}/customers",
    response_model=ClvCustomerPage,
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
    summary="List a CLV run's customers, most valuable first",
    description=CLV_DEFINITIONS,
)
async def clv_runs_customers(
    request: Request,
    response: Response,
    run_id: RunId,
    session: DbSession,
    principal: Reader,
    params: Annotated[ClvCustomerListParams, Query()],
) -> ClvCustomerPage:
    rows, next_cursor = await service.list_clv_customers(session, principal, run_id, params)
    set_link_header(request, response, next_cursor)
    return ClvCustomerPage(
        data=[ClvCustomerRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/metrics/nps",
    response_model=NpsReport,
    responses=problem_responses(404),
    summary="Net Promoter Score over a window, overall and by month or channel",
    description=NPS_DEFINITION,
)
async def metrics_nps(
    session: DbSession, principal: Reader, params: Annotated[NpsParams, Query()]
) -> NpsReport:
    return await service.nps_report(session, principal, params)


@router.get(
    "/metrics/rfm",
    response_model=RfmReport,
    responses=problem_responses(404),
    summary="RFM segments: how many customers each holds and what they are worth",
    description=RFM_DEFINITION,
)
async def metrics_rfm(
    session: DbSession, principal: Reader, params: Annotated[OrderMetricsParams, Query()]
) -> RfmReport:
    return await service.rfm_report(session, principal, params)


@router.get(
    "/metrics/retention",
    response_model=RetentionReport,
    responses=problem_responses(404),
    summary="Retention: the monthly cohort matrix, a period's retention rate, repeat purchases",
    description=RETENTION_DEFINITION,
)
async def metrics_retention(
    session: DbSession, principal: Reader, params: Annotated[RetentionParams, Query()]
) -> RetentionReport:
    return await service.retention_report(session, principal, params)


@router.get(
    "/contacts/{contact_id}/metrics",
    response_model=ContactMetricsRead,
    responses=problem_responses(404),
    summary="A contact's metrics: what its activity adds up to, and its latest scores",
    description="The `metrics.*` fields of the filter language. " + CLV_DEFINITIONS,
)
async def contacts_metrics(
    contact_id: Annotated[uuid.UUID, Path(description="The contact's id.")],
    session: DbSession,
    principal: Reader,
) -> ContactMetricsRead:
    return await service.contact_metrics(session, principal, contact_id)


@router.get(
    "/metrics/pipeline",
    response_model=PipelineReport,
    responses=problem_responses(404),
    summary="Sales: stage-to-stage conversion, win rate and sales cycle per pipeline",
    description=PIPELINE_DEFINITION,
)
async def metrics_pipeline(
    session: DbSession, principal: Reader, params: Annotated[PipelineParams, Query()]
) -> PipelineReport:
    return await service.pipeline_report(session, principal, params)


@router.get(
    "/metrics/service",
    response_model=SupportReport,
    responses=problem_responses(404),
    summary="Service: response and resolution times, SLA compliance and CSAT",
    description=SUPPORT_DEFINITION,
)
async def metrics_service(
    session: DbSession, principal: Reader, params: Annotated[SupportParams, Query()]
) -> SupportReport:
    return await service.support_report(session, principal, params)


@router.get(
    "/metrics/clv",
    response_model=ClvSummary,
    responses=problem_responses(404),
    summary="Customer lifetime value: what customers have paid, and what the latest run predicts",
    description=CLV_DEFINITIONS,
)
async def metrics_clv(
    session: DbSession, principal: Reader, params: Annotated[OrderMetricsParams, Query()]
) -> ClvSummary:
    return await service.clv_summary(session, principal, params)
