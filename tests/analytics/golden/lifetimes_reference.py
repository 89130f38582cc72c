"""The reference the CLV module is checked against: orders generated from the BG/NBD and
Gamma-Gamma processes with a fixed seed, and what the `lifetimes` package (0.11.3) makes of
them, stored here as golden files.

    python3 tests/analytics/golden/lifetimes_reference.py [--environment-only]

lifetimes 0.11.3 needs numpy<2, pandas<2 and scipy<1.12, which the project's own environment
cannot hold, so this script makes a virtual environment of its own (in the system temp folder),
installs exactly those there, and runs itself inside it. It writes `orders.csv` (the generated
orders) and, per time unit, `lifetimes_<unit>.json` (the fitted parameters) and
`lifetimes_<unit>.csv` (per-customer inputs and predictions). Run it again only to change the
reference; tests/analytics/test_clv.py reads what it wrote. `--environment-only` makes the
environment and stops (bench/analytics.py runs pandas + lifetimes in it)."""

import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = [
    "lifetimes==0.11.3",
    "numpy==1.26.4",
    "pandas==1.5.3",
    "scipy==1.11.4",
    "autograd==1.7.0",
    "dill==0.3.9",
]
SEED = 2026
CUSTOMERS = 2_000
START = "2025-01-01"
AS_OF = "2026-06-24"  # 539 days after START
PREDICTION_HORIZON = {"week": 26, "day": 180}  # in the unit: half a year either way
CLV_MONTHS = 12
DISCOUNT_MONTHLY = 0.01
# What lifetimes calls each unit: summary_data_from_transaction_data(freq="D",
# freq_multiplier=days) gives recency and T in days / 7 for weeks, not calendar weeks; and
# customer_lifetime_value(freq=...) steps a month as 4.345 weeks or 30 days.
UNITS = {"week": (7, "W"), "day": (1, "D")}


def generate_orders(path: Path) -> None:
    """Each customer buys at a Poisson rate (gamma-distributed across customers) and may drop
    out after each purchase (beta-distributed probability); each purchase's spend is gamma with
    a customer-level scale (the Gamma-Gamma model). Some purchases are two orders on one day."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    start = np.datetime64(f"{START}T00:00:00")
    end_day = 539
    rows = []
    for customer in range(CUSTOMERS):
        rate_per_day = rng.gamma(0.8, 1 / 4.0) / 7  # weekly rate ~ Gamma(r=0.8, alpha=4)
        dropout = rng.beta(0.6, 3.0)
        spend_scale = rng.gamma(4.0, 1 / 15.0)  # nu ~ Gamma(q=4, gamma=15)
        day = rng.uniform(0, 365)
        while day < end_day:
            for _ in range(2 if rng.random() < 0.05 else 1):
                spend = rng.gamma(6.0, 1 / spend_scale)
                seconds = int(day * 86_400) + int(rng.integers(0, 3_600))
                at = start + np.timedelta64(seconds, "s")
                rows.append((f"c{customer:05d}", f"{at}Z", f"{spend:.2f}"))
            if rng.random() < dropout:
                break
            day += rng.exponential(1 / rate_per_day)
    with path.open("w") as file:
        file.write("contact_id,ordered_at,total\n")
        for row in rows:
            file.write(",".join(row) + "\n")


def reference(unit: str) -> None:
    import numpy as np
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    days, freq = UNITS[unit]
    orders = pd.read_csv(HERE / "orders.csv")
    orders["ordered_at"] = pd.to_datetime(orders["ordered_at"], utc=True).dt.tz_localize(None)
    summary = summary_data_from_transaction_data(
        orders, "contact_id", "ordered_at", monetary_value_col="total",
        observation_period_end=pd.Timestamp(AS_OF), freq="D", freq_multiplier=days,
    )  # fmt: skip
    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(summary["frequency"], summary["recency"], summary["T"])
    returning = summary[summary["frequency"] > 0]
    ggf = GammaGammaFitter(penalizer_coef=0.0)
    ggf.fit(returning["frequency"], returning["monetary_value"])
    f, r, t, m = (summary[c] for c in ("frequency", "recency", "T", "monetary_value"))
    summary["expected_purchases"] = bgf.conditional_expected_number_of_purchases_up_to_time(
        PREDICTION_HORIZON[unit], f, r, t
    )
    summary["p_alive"] = bgf.conditional_probability_alive(f, r, t)
    summary["expected_average_spend"] = ggf.conditional_expected_average_profit(f, m)
    summary["clv"] = ggf.customer_lifetime_value(
        bgf, f, r, t, m, time=CLV_MONTHS, discount_rate=DISCOUNT_MONTHLY, freq=freq
    )
    summary.to_csv(HERE / f"lifetimes_{unit}.csv", float_format="%.10g")
    fits = {
        "as_of": AS_OF,
        "time_unit": unit,
        "prediction_horizon": PREDICTION_HORIZON[unit],
        "clv_horizon_months": CLV_MONTHS,
        "discount_rate_monthly": DISCOUNT_MONTHLY,
        "customers": len(summary),
        "returning_customers": len(returning),
        "bgnbd": {
            **{k: float(v) for k, v in bgf.params_.items()},
            "log_likelihood": float(-bgf._negative_log_likelihood_ * len(summary)),
        },
        "gamma_gamma": {
            **{k: float(v) for k, v in ggf.params_.items()},
            "log_likelihood": float(-ggf._negative_log_likelihood_ * len(returning)),
        },
    }
    # lifetimes fits on times rescaled so the longest T is 10 and reports that fit's likelihood;
    # the likelihood of the data in the requested unit is its own function at the parameters.
    ones = np.ones(len(summary))
    fits["bgnbd"]["log_likelihood"] = -len(summary) * float(
        BetaGeoFitter._negative_log_likelihood(np.log(bgf.params_.values), f, r, t, ones, 0.0)
    )
    (HERE / f"lifetimes_{unit}.json").write_text(json.dumps(fits, indent=2) + "\n")


def main() -> None:
    if os.environ.get("LIFETIMES_REFERENCE_INSIDE") != "1":
        folder = Path(tempfile.gettempdir()) / "crm-api-lifetimes-venv"
        python = folder / "bin" / "python"
        if not python.exists():
            venv.create(folder, with_pip=True)
            pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, *REQUIREMENTS], check=True)
        if "--environment-only" in sys.argv:
            return
        env = {**os.environ, "LIFETIMES_REFERENCE_INSIDE": "1"}
        subprocess.run([str(python), __file__], check=True, env=env)
        return
    generate_orders(HERE / "orders.csv")
    for unit in UNITS:
        reference(unit)
    print(f"wrote {HERE}/orders.csv and lifetimes_{{{','.join(UNITS)}}}.{{json,csv}}")


if __name__ == "__main__":
    sys.exit(main())
