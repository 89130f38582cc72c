import asyncio
import uuid
from datetime import UTC, datetime

import polars as pl
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.analytics import clv
from crm_api.analytics.load import query_frame
from crm_api.analytics.models import ClvRun, ClvRunCustomer
from crm_api.analytics.repository import (
    CLV_CUSTOMER_ID_SORT,
    CLV_CUSTOMER_SORTS,
    CLV_RUN_ID_SORT,
    CLV_RUN_SORTS,
    ORDER_SCHEMA,
    ClvRunRepository,
)
from crm_api.analytics.schemas import ClvCustomerListParams, ClvRunCreate, ClvRunStatus
from crm_api.core.auth import Principal
from crm_api.core.pagination import make_page, page_request
from crm_api.core.records import get_or_404, list_records
from crm_api.core.schemas import ListParams
from crm_api.segments.service import get_segment

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
    listing = params.model_copy(update={"sort": params.sort or "-created_at"})
    return await list_records(
        ClvRunRepository(session), principal.workspace_id, listing, [], CLV_RUN_SORTS,
        CLV_RUN_ID_SORT,
    )  # fmt: skip


async def list_clv_customers(
    session: AsyncSession, principal: Principal, id: uuid.UUID, params: ClvCustomerListParams
) -> tuple[list[ClvRunCustomer], str | None]:
    """A run's customers, most valuable first; none until it has succeeded."""
    run = await get_clv_run(session, principal, id)
    page = page_request(
        sort=params.sort or "-clv",
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
    return predicted, bgnbd, gamma_gamma


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
        currency = run.currency or await repository.most_used_currency(run)
        if currency is None:
            raise RunFailed("No customer has a paid order by as_of.")
        run.currency = currency
        orders = await query_frame(session, repository.orders(run, currency), ORDER_SCHEMA)
        # The fits are CPU work: off the event loop, so the worker's other tasks go on.
        predicted, bgnbd, gamma_gamma = await asyncio.to_thread(_fit_and_predict, orders, run)
    except RunFailed as failure:
        run.status, run.error = ClvRunStatus.failed.value, str(failure)
    else:
        await repository.store_customers(run, predicted)
        run.status = ClvRunStatus.succeeded.value
        run.bgnbd, run.gamma_gamma = _fit_read(bgnbd), _fit_read(gamma_gamma)
        run.customers = predicted.height
        run.returning_customers = gamma_gamma.customers
    run.finished_at = datetime.now(UTC)
    await session.flush()
    return 1
