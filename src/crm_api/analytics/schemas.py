import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field

from crm_api.core.pagination import Page
from crm_api.core.schemas import (
    CurrencyCode,
    DecimalText,
    InputSchema,
    ListParams,
    ReadSchema,
    UtcDatetime,
)

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _in_range(moment: datetime) -> datetime:
    # Windows reach back a period before their start, and a year before as_of.
    if not EARLIEST <= moment < LATEST:
        raise ValueError("a time from the year 1900 to 8999")
    return moment


Moment = Annotated[UtcDatetime, AfterValidator(_in_range)]

CLV_DEFINITIONS = (
    "Orders count when they were placed on or before `as_of` and are paid, unless they were "
    "refunded or cancelled by then; by the day they were placed (UTC), and orders of one day "
    "are one purchase. Per "
    "customer: `frequency` is the number of repeat purchase days; `recency` (first to last "
    "purchase) and `T` (first purchase to `as_of`) are days divided by the unit's length (7 "
    "for weeks, 30 for months), not calendar units; `monetary_value` is the mean value of "
    "the repeat purchase days (0 without any); `historical_value` is everything they paid. "
    "BG/NBD (Fader, Hardie & Lee 2005) is fitted to frequency, recency and T by maximum "
    "likelihood: `expected_purchases` over `prediction_horizon` units and `p_alive`, the "
    "probability the customer has not left. Gamma-Gamma is fitted to the repeat customers' "
    "frequency and monetary value: `expected_average_spend`. `clv` sums, month by month over "
    "`clv_horizon_months`, the expected purchases of the month times the expected spend, "
    "discounted by (1 + `discount_rate_monthly`) per month (a month is 30 days, 4.345 weeks)."
)


class TimeUnit(StrEnum):
    day = "day"
    week = "week"
    month = "month"


class ClvRunStatus(StrEnum):
    queued = "queued"
    succeeded = "succeeded"
    failed = "failed"


class ClvRunCreate(InputSchema):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "as_of": "2026-12-01T00:00:00Z",
                    "time_unit": "week",
                    "prediction_horizon": 52,
                    "clv_horizon_months": 12,
                    "discount_rate_monthly": 0.01,
                }
            ]
        }
    }

    as_of: Moment | None = Field(default=None, description="Default: now.")
    time_unit: TimeUnit = TimeUnit.week
    prediction_horizon: Annotated[float, Field(gt=0, le=10_000)] | None = Field(
        default=None, description="In time units, for `expected_purchases`. Default: a year."
    )
    clv_horizon_months: Annotated[int, Field(ge=1, le=120)] = 12
    discount_rate_monthly: Annotated[float, Field(ge=0, le=1)] = 0.01
    segment_id: uuid.UUID | None = Field(default=None, description="Only its members.")
    currency: CurrencyCode | None = Field(
        default=None, description="Default: the currency of most of the orders."
    )


class BgNbdFit(ReadSchema):
    r: float
    alpha: float = Field(description="In the run's time unit.")
    a: float
    b: float
    log_likelihood: float
    converged: bool
    iterations: int


class GammaGammaFit(ReadSchema):
    p: float
    q: float
    v: float
    log_likelihood: float
    converged: bool
    iterations: int


class ClvRunRead(ReadSchema):
    id: uuid.UUID
    status: ClvRunStatus = Field(description="`queued` until the worker has run it.")
    as_of: datetime
    time_unit: TimeUnit
    prediction_horizon: float
    clv_horizon_months: int
    discount_rate_monthly: float
    segment_id: uuid.UUID | None
    currency: str | None = Field(description="The orders' currency (chosen when not sent).")
    customers: int | None = Field(description="Customers with a purchase by `as_of`.")
    returning_customers: int | None = Field(
        description="Of them, those with repeat purchases: the Gamma-Gamma fit's data."
    )
    bgnbd: BgNbdFit | None
    gamma_gamma: GammaGammaFit | None
    error: str | None = Field(description="Why a failed run failed.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ClvRunPage(Page[ClvRunRead]):
    pass


class ClvCustomerRead(ReadSchema):
    contact_id: uuid.UUID
    frequency: float
    recency: float
    T: float = Field(validation_alias="age", description="First purchase to `as_of`, in units.")
    monetary_value: float
    historical_value: float
    expected_purchases: float
    p_alive: float
    expected_average_spend: float
    clv: float
    rfm_recency: int | None = Field(
        description="RFM as of the run's as_of: days since the last order."
    )
    rfm_frequency: int | None = Field(description="Orders.")
    rfm_monetary: float | None = Field(description="Their total.")
    rfm_recency_score: int | None
    rfm_frequency_score: int | None
    rfm_monetary_score: int | None
    rfm_segment: str | None


class ClvCustomerPage(Page[ClvCustomerRead]):
    pass


class ClvCustomerListParams(ListParams):
    sort: str | None = Field(
        default=None,
        max_length=200,
        description="`-clv` (the default), `clv`, `-p_alive`, `p_alive`, `-expected_purchases`, "
        "`expected_purchases`.",
    )


NPS_DEFINITION = (
    "Promoters answer 9-10, passives 7-8, detractors 0-6; NPS is the share of promoters minus "
    "the share of detractors, in points (-100 to 100), over the NPS answers given in the "
    "window. `margin_of_error` is 1.96 standard errors of that mean of +1/0/-1 answers (95%), "
    "in points."
)
RFM_DEFINITION = (
    "Per customer with a standing order by `as_of` (as for CLV): recency is the days from "
    "their last order to `as_of`, frequency their orders, monetary their total. Each is scored "
    "1-5 by quintile of the customers ranked on it (5: most recent, most frequent, highest "
    "value; ceil(5 x rank / customers), tied customers sharing the higher score), and the R "
    "and F scores name the segment: "
    "champions (R 5, F 4-5), loyal_customers (R 3-4, F 4-5), potential_loyalists (R 4-5, "
    "F 2-3), new_customers (R 5, F 1), promising (R 4, F 1), need_attention (R 3, F 3), "
    "about_to_sleep (R 3, F 1-2), at_risk (R 1-2, F 3-4), cannot_lose_them (R 1-2, F 5), "
    "hibernating (R 1-2, F 1-2)."
)
RETENTION_DEFINITION = (
    "Orders count as for CLV. Customers are acquired in the month of their first order (their "
    "cohort); a cohort's cell for period k is the share of it with an order in month k after. "
    "Over the period [start, end) (default: the last 30 days to `as_of`), the retention rate "
    "is (E - N) / S: S customers with an order in the period of the same length before it, E "
    "with one in the period (not counting those back after a longer absence, reported as "
    "`reactivated_customers`), N of them new; churn is 1 - rate. The repeat purchase rate is "
    "the share of customers with orders on two days or more."
)


class NpsGrouping(StrEnum):
    none = "none"
    month = "month"
    channel = "channel"


class MetricsParams(InputSchema):
    as_of: Moment | None = Field(default=None, description="Default: now.")
    segment_id: uuid.UUID | None = Field(default=None, description="Only its members.")


class OrderMetricsParams(MetricsParams):
    currency: CurrencyCode | None = Field(
        default=None, description="Default: the currency of most of the orders."
    )


class NpsParams(MetricsParams):
    start: Moment | None = Field(
        default=None, description="Answers given at or after this; default: every answer."
    )
    group_by: NpsGrouping = NpsGrouping.none


class RetentionParams(OrderMetricsParams):
    start: Moment | None = Field(
        default=None, description="The period's start; default: 30 days before its end."
    )


class NpsScore(ReadSchema):
    group: str | None = Field(description="The month (YYYY-MM) or channel; none overall.")
    responses: int
    promoters: int
    passives: int
    detractors: int
    promoter_share: float | None
    passive_share: float | None
    detractor_share: float | None
    nps: float | None = Field(description="None without answers.")
    margin_of_error: float | None


class NpsReport(ReadSchema):
    as_of: datetime
    start: datetime | None
    overall: NpsScore
    groups: list[NpsScore]


class RfmSegmentRow(ReadSchema):
    segment: str
    customers: int
    customer_share: float
    value: float
    value_share: float | None


class RfmReport(ReadSchema):
    as_of: datetime
    currency: str | None
    customers: int
    segments: list[RfmSegmentRow] = Field(description="By value, highest first.")


class CohortCell(ReadSchema):
    cohort: str = Field(description="The month of first orders, YYYY-MM.")
    period: int = Field(description="Months after the cohort's.")
    customers: int
    cohort_size: int
    retention: float


class PeriodRetention(ReadSchema):
    start: datetime
    end: datetime
    start_customers: int
    end_customers: int
    new_customers: int
    reactivated_customers: int
    retention_rate: float | None = Field(description="None without customers before it.")
    churn_rate: float | None


class RetentionReport(ReadSchema):
    as_of: datetime
    currency: str | None
    cohorts: list[CohortCell]
    period: PeriodRetention
    repeat_purchase_rate: float | None


class ContactMetricsRead(ReadSchema):
    """What the filter language reads as `metrics.*`."""

    contact_id: uuid.UUID
    order_count: int = Field(description="Paid orders.")
    total_spent: DecimalText = Field(description="Their total, currencies as they are.")
    first_order_at: datetime | None
    last_order_at: datetime | None
    last_nps_score: int | None
    open_ticket_count: int
    predicted_clv: float | None = Field(
        description="From the latest workspace-wide CLV run (clv_run_id), as of scored_at."
    )
    p_alive: float | None
    expected_purchases: float | None
    rfm_recency_score: int | None
    rfm_frequency_score: int | None
    rfm_monetary_score: int | None
    rfm_segment: str | None
    scored_at: datetime | None
    clv_run_id: uuid.UUID | None


PIPELINE_DEFINITION = (
    "From the deals' stage history as it stood at `as_of` (deleted deals left out). A deal "
    "reached an open stage when it entered it or a later open stage of the pipeline, or won "
    "there (deals may skip stages); a stage's `conversion_rate` is the share of the deals that "
    "reached it which reached the next (the last open stage's next is winning). Win rate: of "
    "the deals closed in the window (their last move as of `as_of` went to a won or lost "
    "stage, at or after `start`), the share won. Sales cycle: from a won deal's creation to "
    "its win, in days."
)
SUPPORT_DEFINITION = (
    "Over the tickets opened in [start, as_of] (default: the 30 days to `as_of`), as they "
    "stood at `as_of`. First response and resolution times run from a ticket's creation, in "
    "minutes, over the tickets responded to (resolved) by then: median, 90th percentile "
    "(linear interpolation) and mean. SLA compliance, per target: of the tickets whose target "
    "was met or whose due time has passed, the share met on time. CSAT: the mean of the 1-5 "
    "answers given in the window, and the share that were 4 or 5."
)


class PipelineParams(InputSchema):
    as_of: Moment | None = Field(default=None, description="Default: now.")
    start: Moment | None = Field(
        default=None, description="Closings at or after this count for the win rate and cycle."
    )
    pipeline_id: uuid.UUID | None = Field(default=None, description="Only this pipeline.")


class StageConversion(ReadSchema):
    stage_id: uuid.UUID
    name: str
    reached: int
    conversion_rate: float | None


class PipelineMetrics(ReadSchema):
    pipeline_id: uuid.UUID
    name: str
    stages: list[StageConversion] = Field(description="The open stages, in order.")
    won: int
    lost: int
    win_rate: float | None
    average_cycle_days: float | None
    median_cycle_days: float | None


class PipelineReport(ReadSchema):
    as_of: datetime
    start: datetime | None
    pipelines: list[PipelineMetrics]


class SupportParams(MetricsParams):
    start: Moment | None = Field(
        default=None, description="Tickets opened at or after this; default: 30 days before."
    )


class DurationStats(ReadSchema):
    count: int
    median: float | None
    p90: float | None
    mean: float | None


class SlaCompliance(ReadSchema):
    met: int
    breached: int
    compliance: float | None


class CsatSummary(ReadSchema):
    responses: int
    average: float | None
    satisfied_share: float | None


class SupportReport(ReadSchema):
    as_of: datetime
    start: datetime
    tickets: int
    first_response_minutes: DurationStats
    resolution_minutes: DurationStats
    first_response_sla: SlaCompliance
    resolution_sla: SlaCompliance
    csat: CsatSummary


class ValueDistribution(ReadSchema):
    total: float
    mean: float | None
    median: float | None
    p90: float | None


class ClvSummary(ReadSchema):
    as_of: datetime
    currency: str | None
    customers: int = Field(description="With a standing order by as_of.")
    historical: ValueDistribution = Field(description="What each customer has paid.")
    latest_run: ClvRunRead | None = Field(
        description="The latest succeeded workspace-wide run as of as_of (none for a segment)."
    )
    predicted: ValueDistribution | None = Field(description="Its CLV per customer.")
