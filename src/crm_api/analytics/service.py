import asyncio
import logging
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.analytics import clv, nps, pipeline, report, retention, rfm, support
from crm_api.analytics.load import fixed_width_frame, query_frame
from crm_api.analytics.models import ClvRun, ClvRunCustomer
from crm_api.analytics.repository import (
    CHANGE_SCHEMA,
    CLV_CUSTOMER_ID_SORT,
    CLV_CUSTOMER_SORTS,
    CLV_RUN_ID_SORT,
    CLV_RUN_SORTS,
    DEAL_SCHEMA,
    FEEDBACK_SCHEMA,
    ORDER_SCHEMA,
    STAGE_SCHEMA,
    TICKET_SCHEMA,
    ClvRunRepository,
    MetricsRepository,
    Population,
    deal_rows,
    feedback_rows,
    order_rows,
    stage_change_rows,
    stage_rows,
    ticket_rows,
)
from crm_api.analytics.schemas import (
    ClvCustomerListParams,
    ClvRunCreate,
    ClvRunRead,
    ClvRunStatus,
    ClvSummary,
    ContactMetricsRead,
    NpsGrouping,
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
from crm_api.contacts.repository import ContactRepository
from crm_api.core.auth import Principal
from crm_api.core.errors import InvalidInput
from crm_api.core.pagination import make_page, page_request
from crm_api.core.records import get_or_404, list_records
from crm_api.core.schemas import ListParams
from crm_api.deals.repository import PipelineRepository
from crm_api.segments.service import get_segment

logger = logging.getLogger(__name__)
# A year, in each unit: the default horizon of expected purchases.
UNITS_PER_YEAR = {"day": 365.0, "week": 52.0, "month": 12.0}


class RunFailed(Exception):
    """What makes a run fail, in words for its `error`."""


async def create_clv_run(session: AsyncSession, principal: Principal, data: ClvRunCreate) -> ClvRun:
    if data.segment_id is not None:
        await get_segment(session, principal, data.segment_id)  # 404 for another's
    run = ClvRun(
        workspace_id=principal.workspace_id,
        status=ClvRunStatus.queued.value,
        as_of=data.as_of or datetime.now(UTC),
        time_unit=data.time_unit.value,
        prediction_horizon=data.prediction_horizon or UNITS_PER_YEAR[data.time_unit],
        clv_horizon_months=data.clv_horizon_months,
        discount_rate_monthly=data.discount_rate_monthly,
        segment_id=data.segment_id,
        currency=data.currency,
    )
    ClvRunRepository(session).add(run)
    await session.flush()
    return run


async def get_clv_run(session: AsyncSession, principal: Principal, id: uuid.UUID) -> ClvRun:
    return await get_or_404(ClvRunRepository(session), principal.workspace_id, id, "CLV run")


async def list_clv_runs(
    session: AsyncSession, principal: Principal, params: ListParams
) -> tuple[list[ClvRun], str | None]:
    return await list_records(
        ClvRunRepository(session), principal.workspace_id, params, [], CLV_RUN_SORTS,
        CLV_RUN_ID_SORT, default_sort="-created_at",
    )  # fmt: skip


async def list_clv_customers(
    session: AsyncSession, principal: Principal, id: uuid.UUID, params: ClvCustomerListParams
) -> tuple[list[ClvRunCustomer], str | None]:
    """A run's customers, most valuable first; none until it has succeeded."""
    run = await get_clv_run(session, principal, id)
    page = page_request(
        sort=params.sort,
        default_sort="-clv",
        allowed_sorts=CLV_CUSTOMER_SORTS,
        id_field=CLV_CUSTOMER_ID_SORT,
        filters=params.filters(),
        cursor=params.cursor,
        limit=params.limit,
    )
    return make_page(await ClvRunRepository(session).customers_page(run, page), page)


def _fit_and_predict(orders: pl.DataFrame, run: ClvRun) -> tuple[pl.DataFrame, clv.Fit, clv.Fit]:
    summary = clv.rfm_summary(orders, run.as_of.astimezone(UTC).date(), run.time_unit)
    if summary.height == 0:
        raise RunFailed("No customer has a paid order by as_of.")
    if summary.filter(pl.col("frequency") > 0).height < 2:
        raise RunFailed("The models need customers with repeat purchases; fewer than 2 have.")
    bgnbd, gamma_gamma = clv.fit_bgnbd(summary), clv.fit_gamma_gamma(summary)
    for name, fit in (("BG/NBD", bgnbd), ("Gamma-Gamma", gamma_gamma)):
        if not fit.converged:
            raise RunFailed(f"The {name} fit did not converge: {fit.message}")
    predicted = clv.predict(
        summary,
        bgnbd,
        gamma_gamma,
        time_unit=run.time_unit,
        prediction_horizon=run.prediction_horizon,
        clv_horizon_months=run.clv_horizon_months,
        discount_rate_monthly=run.discount_rate_monthly,
    )
    if not predicted.select(pl.all_horizontal(pl.selectors.float().is_finite().all())).item():
        raise RunFailed("The fitted models give non-finite predictions for these customers.")
    scored = rfm.rfm(orders, run.as_of.astimezone(UTC).date()).select(
        "contact_id",
        pl.col("recency").alias("rfm_recency"),
        pl.col("frequency").alias("rfm_frequency"),
        pl.col("monetary").alias("rfm_monetary"),
        pl.col("r_score").alias("rfm_recency_score"),
        pl.col("f_score").alias("rfm_frequency_score"),
        pl.col("m_score").alias("rfm_monetary_score"),
        pl.col("segment").alias("rfm_segment"),
    )
    return predicted.join(scored, on="contact_id", how="left"), bgnbd, gamma_gamma


def _fit_read(fit: clv.Fit) -> dict[str, object]:
    return {
        **fit.params,
        "log_likelihood": fit.log_likelihood,
        "converged": fit.converged,
        "iterations": fit.iterations,
    }


async def run_queued_clv_runs(session: AsyncSession, now: datetime) -> int:
    """The worker's task: the oldest queued run, computed and stored in this transaction."""
    repository = ClvRunRepository(session)
    run = await repository.claim_queued()
    if run is None:
        return 0
    run.started_at = datetime.now(UTC)
    try:
        population = Population(run.workspace_id, run.segment_id)
        currency = run.currency or await MetricsRepository(session).most_used_currency(
            population, run.as_of
        )
        if currency is None:
            raise RunFailed("No customer has a paid order by as_of.")
        run.currency = currency
        orders = await fixed_width_frame(
            session, order_rows(population, run.as_of, currency), ORDER_SCHEMA
        )
        # The fits are CPU work: off the event loop, so the worker's other tasks go on.
        try:
            found = await asyncio.to_thread(_fit_and_predict, orders, run)
        except (ArithmeticError, ValueError, np.linalg.LinAlgError) as error:
            # Numbers the models cannot take: the run fails rather than being retried forever.
            logger.exception("CLV run %s failed", run.id)
            raise RunFailed(
                f"The models could not be computed ({type(error).__name__})."
            ) from error
        predicted, bgnbd, gamma_gamma = found
    except RunFailed as failure:
        run.status, run.error = ClvRunStatus.failed.value, str(failure)
    else:
        await repository.store_customers(run, predicted)
        if run.segment_id is None:
            await repository.publish_scores(run)
        run.status = ClvRunStatus.succeeded.value
        run.bgnbd, run.gamma_gamma = _fit_read(bgnbd), _fit_read(gamma_gamma)
        run.customers = predicted.height
        run.returning_customers = gamma_gamma.customers
    run.finished_at = datetime.now(UTC)
    await session.flush()
    return 1


# Reports computed on request: one load, one pass in Polars.


async def _population(
    session: AsyncSession, principal: Principal, segment_id: uuid.UUID | None
) -> Population:
    if segment_id is not None:
        await get_segment(session, principal, segment_id)  # 404 for another workspace's
    return Population(principal.workspace_id, segment_id)


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """NaN (a share of no answers) reads as null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


async def nps_report(session: AsyncSession, principal: Principal, params: NpsParams) -> NpsReport:
    as_of = params.as_of or datetime.now(UTC)
    population = await _population(session, principal, params.segment_id)
    statement = feedback_rows(population, "nps", params.start, as_of)
    answers = await query_frame(session, statement, FEEDBACK_SCHEMA)
    groups: list[dict[str, Any]] = []
    if params.group_by is not NpsGrouping.none:
        key = (
            pl.col("responded_at").dt.strftime("%Y-%m")
            if params.group_by is NpsGrouping.month
            else pl.col("channel")
        )
        by_group = nps.nps(answers.with_columns(key.alias("group")), ["group"])
        groups = [_finite(row) for row in by_group.iter_rows(named=True)]
    overall = {"group": None, **_finite(nps.nps(answers).row(0, named=True))}
    return NpsReport.model_validate(
        {"as_of": as_of, "start": params.start, "overall": overall, "groups": groups}
    )


async def _standing_orders(
    session: AsyncSession, principal: Principal, params: OrderMetricsParams
) -> tuple[datetime, str | None, pl.DataFrame]:
    as_of = params.as_of or datetime.now(UTC)
    population = await _population(session, principal, params.segment_id)
    currency = params.currency or await MetricsRepository(session).most_used_currency(
        population, as_of
    )
    if currency is None:
        return as_of, None, pl.DataFrame(schema=ORDER_SCHEMA)
    statement = order_rows(population, as_of, currency)
    return as_of, currency, await fixed_width_frame(session, statement, ORDER_SCHEMA)


async def rfm_report(
    session: AsyncSession, principal: Principal, params: OrderMetricsParams
) -> RfmReport:
    as_of, currency, orders = await _standing_orders(session, principal, params)
    scored = rfm.rfm(orders, as_of.astimezone(UTC).date())
    segments = [_finite(row) for row in rfm.segment_summary(scored).iter_rows(named=True)]
    return RfmReport.model_validate(
        {"as_of": as_of, "currency": currency, "customers": scored.height, "segments": segments}
    )


async def retention_report(
    session: AsyncSession, principal: Principal, params: RetentionParams
) -> RetentionReport:
    as_of, currency, orders = await _standing_orders(session, principal, params)
    last_day = as_of.astimezone(UTC).date()
    start = params.start or as_of - timedelta(days=30)
    if start >= as_of:
        raise InvalidInput(("query", "start"), "The period starts before as_of.")
    cohorts = retention.cohort_matrix(orders, last_day).with_columns(
        pl.col("cohort").dt.strftime("%Y-%m")
    )
    period = retention.period_retention(
        orders, start.astimezone(UTC).date(), last_day + timedelta(days=1)
    )
    return RetentionReport.model_validate(
        {
            "as_of": as_of,
            "currency": currency,
            "cohorts": cohorts.to_dicts(),
            "period": {"start": start, "end": as_of, **period},
            "repeat_purchase_rate": retention.repeat_purchase_rate(orders, last_day)
            if orders.height
            else None,
        }
    )


async def contact_metrics(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID
) -> ContactMetricsRead:
    """A contact without activity has no metrics row: its counts are 0, the rest unknown."""
    await get_or_404(ContactRepository(session), principal.workspace_id, contact_id, "contact")
    row = await ContactRepository(session).metrics_of(principal.workspace_id, contact_id)
    if row is None:
        return ContactMetricsRead.model_validate(
            {
                **dict.fromkeys(ContactMetricsRead.model_fields),
                "contact_id": contact_id,
                "order_count": 0,
                "total_spent": "0",
                "open_ticket_count": 0,
            }
        )
    return ContactMetricsRead.model_validate(row)


async def pipeline_report(
    session: AsyncSession, principal: Principal, params: PipelineParams
) -> PipelineReport:
    as_of = params.as_of or datetime.now(UTC)
    workspace_id = principal.workspace_id
    if params.pipeline_id is not None:
        await get_or_404(PipelineRepository(session), workspace_id, params.pipeline_id, "pipeline")
    changes = await query_frame(session, stage_change_rows(workspace_id, as_of), CHANGE_SCHEMA)
    stages = await query_frame(session, stage_rows(workspace_id, params.pipeline_id), STAGE_SCHEMA)
    deals = await query_frame(session, deal_rows(workspace_id, as_of), DEAL_SCHEMA)
    pipelines = pipeline.pipeline_metrics(changes, stages, deals, params.start, as_of)
    return PipelineReport.model_validate(
        {"as_of": as_of, "start": params.start, "pipelines": pipelines}
    )


async def support_report(
    session: AsyncSession, principal: Principal, params: SupportParams
) -> SupportReport:
    as_of = params.as_of or datetime.now(UTC)
    start = params.start or as_of - timedelta(days=30)
    if start >= as_of:
        raise InvalidInput(("query", "start"), "The window starts before as_of.")
    population = await _population(session, principal, params.segment_id)
    tickets = await query_frame(session, ticket_rows(population, start, as_of), TICKET_SCHEMA)
    statement = feedback_rows(population, "csat", start, as_of)
    answers = await query_frame(session, statement, FEEDBACK_SCHEMA)
    figures = support.support_metrics(tickets, answers["score"], as_of)
    return SupportReport.model_validate({"as_of": as_of, "start": start, **figures})


async def metrics_report_html(
    session: AsyncSession, principal: Principal, workspace_name: str, as_of: datetime | None
) -> str:
    """Every report as of one moment, as the HTML page of `crm-api metrics report`: NPS over
    the year before, by month; retention and service over the 30 days before."""
    moment = as_of or datetime.now(UTC)
    _, clv_values = await _latest_predictions(session, principal, moment)
    year_before = moment - timedelta(days=365)
    return report.render(
        workspace=workspace_name,
        as_of=moment,
        nps=await nps_report(
            session,
            principal,
            NpsParams(as_of=moment, start=year_before, group_by=NpsGrouping.month),
        ),
        retention=await retention_report(session, principal, RetentionParams(as_of=moment)),
        rfm=await rfm_report(session, principal, OrderMetricsParams(as_of=moment)),
        pipeline=await pipeline_report(session, principal, PipelineParams(as_of=moment)),
        support=await support_report(session, principal, SupportParams(as_of=moment)),
        clv_values=clv_values,
    )


async def _latest_predictions(
    session: AsyncSession, principal: Principal, as_of: datetime
) -> tuple[ClvRun | None, pl.Series]:
    """The latest succeeded workspace-wide run as of then, and its customers' CLV."""
    repository = ClvRunRepository(session)
    latest = await repository.latest_workspace_run(principal.workspace_id, as_of)
    if latest is None:
        return None, pl.Series("clv", [], dtype=pl.Float64)
    frame = await query_frame(session, repository.clv_values(latest), {"clv": pl.Float64()})
    return latest, frame["clv"]


def _distribution(values: pl.Series) -> dict[str, float | None]:
    if values.len() == 0:
        return {"total": 0.0, "mean": None, "median": None, "p90": None}
    return {
        "total": float(values.sum()),
        "mean": values.mean(),  # type: ignore[dict-item]
        "median": values.median(),  # type: ignore[dict-item]
        "p90": values.quantile(0.9, interpolation="linear"),
    }


async def clv_summary(
    session: AsyncSession, principal: Principal, params: OrderMetricsParams
) -> ClvSummary:
    """Historical value per customer now; predicted value from the latest run."""
    as_of, currency, orders = await _standing_orders(session, principal, params)
    historical = orders.group_by("contact_id").agg(pl.col("total").sum())["total"]
    latest, predicted = None, None
    if params.segment_id is None:
        latest, values = await _latest_predictions(session, principal, as_of)
        predicted = None if latest is None else _distribution(values)
    return ClvSummary.model_validate(
        {"as_of": as_of, "currency": currency, "customers": historical.len(),
         "historical": _distribution(historical), "predicted": predicted,
         "latest_run": None if latest is None else ClvRunRead.model_validate(latest)}
    )  # fmt: skip
