import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from crm_api.core.pagination import Page
from crm_api.core.schemas import CurrencyCode, InputSchema, ListParams, ReadSchema, UtcDatetime

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

    as_of: UtcDatetime | None = Field(default=None, description="Default: now.")
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


class ClvCustomerPage(Page[ClvCustomerRead]):
    pass


class ClvCustomerListParams(ListParams):
    sort: str | None = Field(
        default=None,
        max_length=200,
        description="`-clv` (the default), `clv`, `-p_alive`, `p_alive`, `-expected_purchases`, "
        "`expected_purchases`.",
    )
