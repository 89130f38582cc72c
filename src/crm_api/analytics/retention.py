"""Retention, from orders: customers are acquired in the month of their first order (their
cohort); cell (c, k) of the cohort matrix is the share of cohort c with an order in month
c + k. Over a period, the customer retention rate is CRR = (E - N) / S: S customers active in
the period before, E active in the period (not counting those back after a longer absence,
reported apart), N of them new in it (first order); churn = 1 - CRR.
The repeat purchase rate is the share of customers with orders on two days or more."""

from datetime import date

import polars as pl


def _months(orders: pl.DataFrame, as_of: date) -> pl.LazyFrame:
    """One row per customer and month with an order, with the customer's cohort month."""
    return (
        orders.lazy()
        .filter(pl.col("ordered_at").dt.date() <= as_of)
        .select("contact_id", pl.col("ordered_at").dt.date().dt.truncate("1mo").alias("month"))
        .unique()
        .with_columns(pl.col("month").min().over("contact_id").alias("cohort"))
    )


def cohort_matrix(orders: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """cohort, period (months since), customers (of the cohort active then), cohort_size,
    retention (their share); period 0 is the whole cohort."""
    months = _months(orders, as_of)
    period = (
        (pl.col("month").dt.year() - pl.col("cohort").dt.year()) * 12
        + pl.col("month").dt.month()
        - pl.col("cohort").dt.month()
    )
    return (
        months.with_columns(period.alias("period"))
        .group_by("cohort", "period")
        .agg(pl.len().alias("customers"))
        .with_columns(
            pl.col("customers")
            .filter(pl.col("period") == 0)
            .first()
            .over("cohort")
            .alias("cohort_size")
        )
        .with_columns((pl.col("customers") / pl.col("cohort_size")).alias("retention"))
        .sort("cohort", "period")
        .collect()
    )


def period_retention(orders: pl.DataFrame, start: date, end: date) -> dict[str, float | int | None]:
    """CRR over [start, end) against the period of the same length before it."""
    length = min(end - start, start - date.min)  # the period before goes back to year 1 at most
    day = pl.col("ordered_at").dt.date()
    first = orders.group_by("contact_id").agg(day.min().alias("first"))
    before = set(orders.filter(day.is_between(start - length, start, closed="left"))["contact_id"])
    during = set(orders.filter(day.is_between(start, end, closed="left"))["contact_id"])
    new = set(first.filter(pl.col("first").is_between(start, end, closed="left"))["contact_id"])
    # Customers back after a period away are neither retained nor new: counted apart, so
    # E - N is exactly the retained and the rate stays within 0 and 1.
    reactivated = during - before - new
    s, n = len(before), len(new & during)
    e = len(during) - len(reactivated)
    rate = (e - n) / s if s else None
    return {"start_customers": s, "end_customers": e, "new_customers": n,
            "reactivated_customers": len(reactivated), "retention_rate": rate,
            "churn_rate": None if rate is None else 1 - rate}  # fmt: skip


def repeat_purchase_rate(orders: pl.DataFrame, as_of: date) -> float:
    days = (
        orders.filter(pl.col("ordered_at").dt.date() <= as_of)
        .group_by("contact_id")
        .agg(pl.col("ordered_at").dt.date().n_unique().alias("days"))
    )
    return int((days["days"] >= 2).sum()) / days.height if days.height else 0.0
