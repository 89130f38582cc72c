"""The pandas + lifetimes side of bench/analytics.py: the same steps on the same orders, the way
a data team does them today. Runs in the lifetimes environment (numpy<2, pandas<2, scipy<1.12:
see tests/analytics/golden/lifetimes_reference.py), so it imports nothing of crm_api.

    python bench/analytics_lifetimes.py --dsn postgresql://... --workspace-id ... --as-of ...

Prints one JSON line per step: {"step", "seconds", "peak_mib"}."""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data

QUERY = """
SELECT o.contact_id::text AS contact_id, o.ordered_at, o.total::float8 AS total
FROM orders o
WHERE o.workspace_id = %(workspace_id)s AND o.deleted_at IS NULL AND o.ordered_at <= %(as_of)s
  AND o.paid_at IS NOT NULL
  AND (o.refunded_at IS NULL OR o.refunded_at > %(as_of)s)
  AND (o.cancelled_at IS NULL OR o.cancelled_at > %(as_of)s)
  AND o.currency = 'EUR'
"""


def step(name: str, started: float) -> float:
    now = time.perf_counter()
    # VmHWM, not ru_maxrss: that would include the memory of the process that started this one.
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    print(json.dumps({"step": name, "seconds": now - started, "peak_mib": peak}), flush=True)
    return now


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--workspace-id", required=True)
    parser.add_argument("--as-of", required=True)
    arguments = parser.parse_args()
    as_of = pd.Timestamp(arguments.as_of)

    started = time.perf_counter()
    with psycopg2.connect(arguments.dsn) as connection:
        orders = pd.read_sql(
            QUERY, connection, params={"workspace_id": arguments.workspace_id, "as_of": as_of}
        )
    orders["ordered_at"] = pd.to_datetime(orders["ordered_at"], utc=True).dt.tz_localize(None)
    started = step("load from PostgreSQL", started)

    summary = summary_data_from_transaction_data(
        orders, "contact_id", "ordered_at", monetary_value_col="total",
        observation_period_end=as_of.tz_localize(None), freq="D", freq_multiplier=7,
    )  # fmt: skip
    started = step("summary (frequency, recency, T, monetary)", started)

    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(summary["frequency"], summary["recency"], summary["T"])
    returning = summary[summary["frequency"] > 0]
    ggf = GammaGammaFitter(penalizer_coef=0.0)
    ggf.fit(returning["frequency"], returning["monetary_value"])
    started = step("fits (BG/NBD, Gamma-Gamma)", started)

    f, r, t, m = (summary[c] for c in ("frequency", "recency", "T", "monetary_value"))
    summary["expected_purchases"] = bgf.conditional_expected_number_of_purchases_up_to_time(
        52, f, r, t
    )
    summary["p_alive"] = bgf.conditional_probability_alive(f, r, t)
    summary["clv"] = ggf.customer_lifetime_value(
        bgf, f, r, t, m, time=12, discount_rate=0.01, freq="W"
    )
    started = step("CLV (expected purchases, P(alive), 12-month CLV)", started)

    days = orders["ordered_at"].dt.floor("D")
    per_customer = (
        orders.assign(day=days)
        .groupby("contact_id")
        .agg(last=("day", "max"), frequency=("total", "size"), monetary=("total", "sum"))
    )
    per_customer["recency"] = (as_of.tz_localize(None).floor("D") - per_customer["last"]).dt.days
    for column, sign in (("recency", -1), ("frequency", 1), ("monetary", 1)):
        rank = (sign * per_customer[column]).rank(method="max")
        per_customer[f"{column}_score"] = np.ceil(rank * 5 / len(per_customer)).astype(int)
    started = step("RFM (values, quintile scores)", started)

    months = orders.assign(month=orders["ordered_at"].dt.to_period("M"))[["contact_id", "month"]]
    months = months.drop_duplicates()
    months["cohort"] = months.groupby("contact_id")["month"].transform("min")
    months["period"] = (months["month"].dt.year - months["cohort"].dt.year) * 12 + (
        months["month"].dt.month - months["cohort"].dt.month
    )
    matrix = months.groupby(["cohort", "period"]).size().unstack(fill_value=0)
    _ = matrix.div(matrix[0], axis=0)
    step("retention (monthly cohort matrix)", started)


if __name__ == "__main__":
    main()
