"""Customer lifetime value: historical, and predicted with BG/NBD (Fader, Hardie & Lee 2005:
how many purchases a customer will make, and the probability that they are still "alive") and
Gamma-Gamma (Fader, Hardie & Lee 2005b: what each purchase is worth), both fitted by maximum
likelihood. Pure functions: Polars frames in, frames and fits out, no I/O.

The inputs follow the standard construction (the `lifetimes` package's, which the tests check
against): orders on one day are one purchase; `frequency` counts the repeat purchase days;
`recency` (first to last purchase) and `T` (first purchase to `as_of`) are in the chosen unit,
days divided by its length (7 for weeks, not calendar weeks); `monetary_value` is the mean
value of the repeat purchase days (0 without any)."""

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

Array = NDArray[np.float64]

UNIT_DAYS = {"day": 1.0, "week": 7.0, "month": 30.0}
# How many units a month is, when the CLV sums month by month (as lifetimes does: 4.345 weeks).
UNITS_PER_MONTH = {"day": 30.0, "week": 4.345, "month": 1.0}


def rfm_summary(orders: pl.DataFrame, as_of: date, time_unit: str) -> pl.DataFrame:
    """One row per customer with a purchase on or before `as_of`: contact_id, frequency,
    recency, T, monetary_value, and historical_value (all they paid). `orders` has contact_id,
    ordered_at (datetime) and total."""
    unit = UNIT_DAYS[time_unit]
    day, key = pl.col("day"), pl.col("contact_id")
    # In customer and day order, a purchase day starts where the customer or the day changes:
    # sums over one grouping, not a grouping by day and then by customer.
    rows = (
        orders.select("contact_id", pl.col("ordered_at").dt.date().alias("day"), "total")
        .filter(day <= as_of)
        .sort("contact_id", "day")
    )
    rows = rows.with_columns(
        (key.ne_missing(key.shift(1)) | day.ne_missing(day.shift(1))).alias("purchase_day"),
        (day == day.first().over("contact_id")).alias("first_day"),
    )
    first_day = day.first()
    frequency = (pl.col("purchase_day").sum() - 1).cast(pl.Float64)
    return (
        rows.group_by("contact_id", maintain_order=True)
        .agg(
            frequency.alias("frequency"),
            ((day.last() - first_day).dt.total_days() / unit).alias("recency"),
            ((pl.lit(as_of) - first_day).dt.total_days() / unit).alias("T"),
            pl.col("total").filter(~pl.col("first_day")).sum().alias("repeat_value"),
            pl.col("total").sum().alias("historical_value"),
        )
        .select(
            "contact_id", "frequency", "recency", "T",
            pl.when(pl.col("frequency") > 0)
            .then(pl.col("repeat_value") / pl.col("frequency"))
            .otherwise(0.0)
            .alias("monetary_value"),
            "historical_value",
        )
    )  # fmt: skip


@dataclass(frozen=True)
class Fit:
    """A maximum-likelihood fit: the parameters, the log-likelihood of the data at them, and
    how the optimiser ended."""

    params: dict[str, float]
    log_likelihood: float
    customers: int
    converged: bool
    iterations: int
    message: str


@dataclass(frozen=True)
class _Distinct:
    """The distinct values of an array, and where each element's is. Repeat purchase counts
    are a few hundred distinct numbers among a million customers, (count, T) pairs some
    thousands: a function of those alone (gamma, digamma, 2F1) is computed once per distinct
    value and gathered."""

    values: NDArray[Any]
    index: NDArray[np.intp]

    @classmethod
    def of(cls, x: NDArray[Any]) -> "_Distinct":
        values, index = np.unique(x, return_inverse=True)
        return cls(values, index)

    def each(self, per_value: Array) -> Array:
        """A per-value array, per element."""
        return per_value[self.index]


def _bgnbd_log_likelihood(
    params: Array, x: Array, counts: _Distinct, t_x: Array, age: Array, w: Array
) -> tuple[float, Array]:
    """The log-likelihood and its gradient in (r, alpha, a, b)."""
    r, alpha, a, b = params
    n = counts.values
    b_last = b + np.maximum(n, 1) - 1
    # The terms of the count alone: a1 and a2 whole, a4's first two.
    per_count = (
        gammaln(r + n) - gammaln(r) + r * np.log(alpha)
        + gammaln(a + b) + gammaln(b + n) - gammaln(b) - gammaln(a + b + n)
    )  # fmt: skip
    log_age, log_last = np.log(alpha + age), np.log(alpha + t_x)
    a3 = -(r + x) * log_age
    a4 = counts.each(np.log(a) - np.log(b_last)) - (r + x) * log_last
    # log(e^a3 + [x > 0] e^a4), without overflow; w4 is the e^a4 term's share of the sum
    repeat = x > 0
    top = np.maximum(a3, np.where(repeat, a4, -np.inf))
    e3, e4 = np.exp(a3 - top), repeat * np.exp(np.minimum(a4 - top, 0))
    mixed = top + np.log(e3 + e4)
    w4 = e4 / (e3 + e4)
    w3 = 1 - w4
    gradient = np.array(
        [
            counts.each(digamma(r + n) - digamma(r) + np.log(alpha))
            - w3 * log_age - w4 * log_last,
            r / alpha - (r + x) * (w3 / (alpha + age) + w4 / (alpha + t_x)),
            counts.each(digamma(a + b) - digamma(a + b + n)) + w4 / a,
            counts.each(digamma(a + b) + digamma(b + n) - digamma(b) - digamma(a + b + n))
            - w4 * counts.each(1 / b_last),
        ]
    )  # fmt: skip
    return float(w @ counts.each(per_count) + w @ mixed), gradient @ w


def _gamma_gamma_log_likelihood(
    params: Array, x: Array, counts: _Distinct, log_m: Array, xm: Array, w: Array
) -> tuple[float, Array]:
    """The log-likelihood and its gradient in (p, q, v); log_m is log(m), xm is x * m."""
    p, q, v = params
    n = counts.values
    pn, px = p * n, p * x
    log_spent = np.log(xm + v)
    terms = (
        counts.each(gammaln(pn + q) - gammaln(pn) + pn * np.log(n)) - gammaln(q) + q * np.log(v)
        + (px - 1) * log_m - (px + q) * log_spent
    )  # fmt: skip
    gradient = np.array(
        [
            x * (counts.each(digamma(pn + q) - digamma(pn) + np.log(n)) + log_m - log_spent),
            counts.each(digamma(pn + q)) - digamma(q) + np.log(v) - log_spent,
            q / v - (px + q) / (xm + v),
        ]
    )
    return float(w @ terms), gradient @ w


def _compress(frame: pl.DataFrame, columns: list[str]) -> tuple[list[Array], Array]:
    """Customers with the same inputs once, with their count as the weight; in the order of
    first appearance, so the sums, and the fit, come out the same on every run."""
    grouped = frame.group_by(columns, maintain_order=True).len()
    arrays = [grouped[c].to_numpy().astype(np.float64) for c in columns]
    return arrays, grouped["len"].to_numpy().astype(np.float64)


def _maximise(
    log_likelihood: Any, names: tuple[str, ...], start: Array, customers: int
) -> tuple[Array, Fit]:
    """Maximise over log-parameters (so they stay positive) by BFGS with the exact gradient;
    where it stops short of a flat optimum, Nelder-Mead settles it from there."""

    def objective(log_params: Array) -> tuple[float, Array]:
        params = np.exp(log_params)
        # A line search may step where a parameter under- or overflows; that step is refused.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            value, gradient = log_likelihood(params)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(log_params)
        return -value / customers, -gradient * params / customers

    found = minimize(objective, np.log(start), jac=True, method="BFGS", options={"gtol": 1e-7})
    iterations, message = int(found.nit), str(found.message)
    # BFGS reports a loss of precision when the mean log-likelihood is flat to the last digits;
    # there, a gradient this small is the optimum.
    converged = bool(found.success) or float(np.abs(found.jac).max()) < 1e-5
    if not converged:
        polished = minimize(
            lambda log_params: objective(log_params)[0],
            found.x,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20_000, "maxfev": 40_000},
        )
        if polished.fun <= found.fun:
            found = polished
        iterations += int(polished.nit)
        converged, message = bool(polished.success), str(polished.message)
    params = np.exp(found.x)
    if np.any(params > 1e6) or np.any(params < 1e-6):
        # The likelihood keeps rising toward an edge: no finite maximum to speak of.
        converged = False
        message = "The parameters run off to the edge: the customers vary too little."
    return params, Fit(
        params=dict(zip(names, (float(p) for p in params), strict=True)),
        log_likelihood=float(-found.fun * customers),
        customers=customers,
        converged=converged and bool(np.isfinite(found.fun)),
        iterations=iterations,
        message=message,
    )


def fit_bgnbd(summary: pl.DataFrame) -> Fit:
    """BG/NBD parameters r, alpha (in the summary's time unit), a, b."""
    (x, t_x, age), weights = _compress(summary, ["frequency", "recency", "T"])
    counts = _Distinct.of(x)
    # Fitted on times scaled so the longest T is 10 (well conditioned whatever the unit); alpha
    # is a time scale, so it scales back, and the likelihood is the data's in its own unit.
    scale = 10.0 / float(age.max())
    t_x_scaled, age_scaled = t_x * scale, age * scale
    scaled, fit = _maximise(
        lambda p: _bgnbd_log_likelihood(p, x, counts, t_x_scaled, age_scaled, weights),
        ("r", "alpha", "a", "b"),
        np.array([1.0, 1.0, 1.0, 1.0]),
        len(summary),
    )
    params = scaled / np.array([1.0, scale, 1.0, 1.0])
    return Fit(
        params=dict(zip(fit.params, (float(p) for p in params), strict=True)),
        log_likelihood=_bgnbd_log_likelihood(params, x, counts, t_x, age, weights)[0],
        customers=fit.customers,
        converged=fit.converged,
        iterations=fit.iterations,
        message=fit.message,
    )


def fit_gamma_gamma(summary: pl.DataFrame) -> Fit:
    """Gamma-Gamma parameters p, q, v, from the customers with repeat purchases of some value."""
    returning = summary.filter((pl.col("frequency") > 0) & (pl.col("monetary_value") > 0))
    (x, m), weights = _compress(returning, ["frequency", "monetary_value"])
    counts, log_m, xm = _Distinct.of(x), np.log(m), x * m
    _, fit = _maximise(
        lambda p: _gamma_gamma_log_likelihood(p, x, counts, log_m, xm, weights),
        ("p", "q", "v"),
        np.array([1.0, 1.0, 1.0]),
        len(returning),
    )
    return fit


def _pairs(x: Array, age: Array) -> _Distinct:
    """The distinct (x, T) pairs, each as one complex number (np.unique sorts those)."""
    return _Distinct.of(x + 1j * age)


def _expected_purchases(
    bgnbd: Fit, t: float, x: Array, t_x: Array, age: Array, pairs: _Distinct
) -> Array:
    r, alpha, a, b = (bgnbd.params[k] for k in ("r", "alpha", "a", "b"))
    # Equation 10's 2F1(r + x, b + x; a + b + x - 1; t / (alpha + T + t)) depends on (x, T)
    # alone, so it is computed once per pair.
    pair_x, pair_age = pairs.values.real, pairs.values.imag
    _a, _b, _c = r + pair_x, b + pair_x, a + b + pair_x - 1
    z = t / (alpha + pair_age + t)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_hyp = np.log(hyp2f1(_a, _b, _c, z))
        # Where the series overflows, Euler's transformation of the same function.
        alternative = np.log(hyp2f1(_c - _a, _c - _b, _c, z)) + (_c - _a - _b) * np.log(1 - z)
    log_hyp = pairs.each(np.where(np.isinf(log_hyp), alternative, log_hyp))
    first = (a + b + x - 1) / (a - 1)
    second = 1 - np.exp(log_hyp + (r + x) * np.log((alpha + age) / (alpha + t + age)))
    denominator = 1 + (x > 0) * (a / (b + x - 1)) * ((alpha + age) / (alpha + t_x)) ** (r + x)
    result: Array = first * second / denominator
    return result


def expected_purchases(bgnbd: Fit, t: float, x: Array, t_x: Array, age: Array) -> Array:
    """E[purchases in the next t units | x, t_x, T] (BG/NBD, equation 10)."""
    return _expected_purchases(bgnbd, t, x, t_x, age, _pairs(x, age))


def p_alive(bgnbd: Fit, x: Array, t_x: Array, age: Array) -> Array:
    """P(still a customer | x, t_x, T); 1 for a customer with no repeat purchase."""
    r, alpha, a, b = (bgnbd.params[k] for k in ("r", "alpha", "a", "b"))
    log_odds = (r + x) * np.log((alpha + age) / (alpha + t_x)) + np.log(
        a / (b + np.maximum(x, 1) - 1)
    )
    result: Array = np.where(x == 0, 1.0, expit(-log_odds))
    return result


def expected_average_spend(gamma_gamma: Fit, x: Array, m: Array) -> Array:
    """E[value of a purchase | x, m]: the population mean weighed against the customer's own."""
    p, q, v = (gamma_gamma.params[k] for k in ("p", "q", "v"))
    own = p * x / (p * x + q - 1)
    result: Array = (1 - own) * (v * p / (q - 1)) + own * m
    return result


def discounted_purchases(
    bgnbd: Fit,
    x: Array,
    t_x: Array,
    age: Array,
    *,
    time_unit: str,
    months: int,
    discount_rate_monthly: float,
) -> Array:
    """Each month's expected purchases, discounted to today and summed: the CLV per unit of
    spend."""
    per_month = UNITS_PER_MONTH[time_unit]
    total = np.zeros_like(x)
    previous = np.zeros_like(x)
    pairs = _pairs(x, age)
    for month in range(1, months + 1):
        cumulative = _expected_purchases(bgnbd, month * per_month, x, t_x, age, pairs)
        total += (cumulative - previous) / (1 + discount_rate_monthly) ** month
        previous = cumulative
    return total


def predict(
    summary: pl.DataFrame,
    bgnbd: Fit,
    gamma_gamma: Fit,
    *,
    time_unit: str,
    prediction_horizon: float,
    clv_horizon_months: int,
    discount_rate_monthly: float,
) -> pl.DataFrame:
    """The summary with expected_purchases (over the horizon), p_alive,
    expected_average_spend and clv per customer."""
    # The purchase predictions depend on (frequency, recency, T) alone: computed once for
    # each history, which many customers share.
    keys = ["frequency", "recency", "T"]
    histories = summary.select(keys).unique(maintain_order=True)
    x, t_x, age = (histories[c].to_numpy().astype(np.float64) for c in keys)
    discounted = discounted_purchases(
        bgnbd, x, t_x, age, time_unit=time_unit, months=clv_horizon_months,
        discount_rate_monthly=discount_rate_monthly,
    )  # fmt: skip
    histories = histories.with_columns(
        pl.Series("expected_purchases", expected_purchases(bgnbd, prediction_horizon, x, t_x, age)),
        pl.Series("p_alive", p_alive(bgnbd, x, t_x, age)),
        pl.Series("_discounted", discounted),
    )
    joined = summary.join(histories, on=keys, how="left", maintain_order="left")
    spend = expected_average_spend(
        gamma_gamma,
        joined["frequency"].to_numpy().astype(np.float64),
        joined["monetary_value"].to_numpy().astype(np.float64),
    )
    return joined.with_columns(
        pl.Series("expected_average_spend", spend),
        (pl.col("_discounted") * spend).alias("clv"),
    ).drop("_discounted")
