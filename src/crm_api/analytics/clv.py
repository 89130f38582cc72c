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
    days = (
        orders.lazy()
        .with_columns(pl.col("ordered_at").dt.date().alias("day"))
        .filter(pl.col("day") <= as_of)
        .group_by("contact_id", "day")
        .agg(pl.col("total").sum().alias("value"))
    )
    first_day = pl.col("day").min()
    first_value = pl.col("value").filter(pl.col("day") == first_day).sum()
    frequency = pl.len() - 1
    return (
        days.group_by("contact_id")
        .agg(
            frequency.cast(pl.Float64).alias("frequency"),
            ((pl.col("day").max() - first_day).dt.total_days() / unit).alias("recency"),
            ((pl.lit(as_of) - first_day).dt.total_days() / unit).alias("T"),
            pl.when(frequency > 0)
            .then((pl.col("value").sum() - first_value) / frequency)
            .otherwise(0.0)
            .alias("monetary_value"),
            pl.col("value").sum().alias("historical_value"),
        )
        .sort("contact_id")
        .collect()
    )


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


def _bgnbd_log_likelihood(
    params: Array, x: Array, t_x: Array, age: Array, w: Array
) -> tuple[float, Array]:
    """The log-likelihood and its gradient in (r, alpha, a, b)."""
    r, alpha, a, b = params
    repeat = x > 0
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + age)
    a4 = np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(t_x + alpha)
    # log(e^a3 + [x > 0] e^a4), without overflow; w4 is the e^a4 term's share of the sum
    top = np.maximum(a3, np.where(repeat, a4, -np.inf))
    e3, e4 = np.exp(a3 - top), repeat * np.exp(np.minimum(a4 - top, 0))
    mixed = top + np.log(e3 + e4)
    w4 = e4 / (e3 + e4)
    w3 = 1 - w4
    gradient = np.array(
        [
            digamma(r + x) - digamma(r) + np.log(alpha)
            - w3 * np.log(alpha + age) - w4 * np.log(alpha + t_x),
            r / alpha - w3 * (r + x) / (alpha + age) - w4 * (r + x) / (alpha + t_x),
            digamma(a + b) - digamma(a + b + x) + w4 / a,
            digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x)
            - w4 / (b + np.maximum(x, 1) - 1),
        ]
    )  # fmt: skip
    return float(np.sum(w * (a1 + a2 + mixed))), gradient @ w


def _gamma_gamma_log_likelihood(params: Array, x: Array, m: Array, w: Array) -> tuple[float, Array]:
    """The log-likelihood and its gradient in (p, q, v)."""
    p, q, v = params
    px = p * x
    terms = (
        gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
        + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(x * m + v)
    )  # fmt: skip
    gradient = np.array(
        [
            x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - np.log(x * m + v)),
            digamma(px + q) - digamma(q) + np.log(v) - np.log(x * m + v),
            q / v - (px + q) / (x * m + v),
        ]
    )
    return float(np.sum(w * terms)), gradient @ w


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
    # Fitted on times scaled so the longest T is 10 (well conditioned whatever the unit); alpha
    # is a time scale, so it scales back, and the likelihood is the data's in its own unit.
    scale = 10.0 / float(age.max())
    scaled, fit = _maximise(
        lambda p: _bgnbd_log_likelihood(p, x, t_x * scale, age * scale, weights),
        ("r", "alpha", "a", "b"),
        np.array([1.0, 1.0, 1.0, 1.0]),
        len(summary),
    )
    params = scaled / np.array([1.0, scale, 1.0, 1.0])
    return Fit(
        params=dict(zip(fit.params, (float(p) for p in params), strict=True)),
        log_likelihood=_bgnbd_log_likelihood(params, x, t_x, age, weights)[0],
        customers=fit.customers,
        converged=fit.converged,
        iterations=fit.iterations,
        message=fit.message,
    )


def fit_gamma_gamma(summary: pl.DataFrame) -> Fit:
    """Gamma-Gamma parameters p, q, v, from the customers with repeat purchases of some value."""
    returning = summary.filter((pl.col("frequency") > 0) & (pl.col("monetary_value") > 0))
    (x, m), weights = _compress(returning, ["frequency", "monetary_value"])
    _, fit = _maximise(
        lambda p: _gamma_gamma_log_likelihood(p, x, m, weights),
        ("p", "q", "v"),
        np.array([1.0, 1.0, 1.0]),
        len(returning),
    )
    return fit


def expected_purchases(bgnbd: Fit, t: float, x: Array, t_x: Array, age: Array) -> Array:
    """E[purchases in the next t units | x, t_x, T] (BG/NBD, equation 10)."""
    r, alpha, a, b = (bgnbd.params[k] for k in ("r", "alpha", "a", "b"))
    _a, _b, _c = r + x, b + x, a + b + x - 1
    z = t / (alpha + age + t)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_hyp = np.log(hyp2f1(_a, _b, _c, z))
        # Where the series overflows, Euler's transformation of the same function.
        alternative = np.log(hyp2f1(_c - _a, _c - _b, _c, z)) + (_c - _a - _b) * np.log(1 - z)
    log_hyp = np.where(np.isinf(log_hyp), alternative, log_hyp)
    first = (a + b + x - 1) / (a - 1)
    second = 1 - np.exp(log_hyp + (r + x) * np.log((alpha + age) / (alpha + t + age)))
    denominator = 1 + (x > 0) * (a / (b + x - 1)) * ((alpha + age) / (alpha + t_x)) ** (r + x)
    result: Array = first * second / denominator
    return result


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
    for month in range(1, months + 1):
        cumulative = expected_purchases(bgnbd, month * per_month, x, t_x, age)
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
