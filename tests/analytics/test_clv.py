"""The CLV module against the `lifetimes` package on the same orders (golden files written by
golden/lifetimes_reference.py): the inputs exactly, the fitted parameters and every
customer's predictions within 0.01% (the issue asks for 1%)."""

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from crm_api.analytics import clv

GOLDEN = Path(__file__).parent / "golden"
TOLERANCE = 1e-4
PREDICTIONS = ["expected_purchases", "p_alive", "expected_average_spend", "clv"]


def golden_orders() -> pl.DataFrame:
    return pl.read_csv(GOLDEN / "orders.csv", schema_overrides={"total": pl.Float64}).with_columns(
        pl.col("ordered_at").str.to_datetime(time_zone="UTC")
    )


def reference(unit: str) -> tuple[dict[str, Any], pl.DataFrame]:
    fits = json.loads((GOLDEN / f"lifetimes_{unit}.json").read_text())
    return fits, pl.read_csv(GOLDEN / f"lifetimes_{unit}.csv")


def relative_error(ours: pl.Series, theirs: pl.Series) -> float:
    return float(((ours - theirs).abs() / theirs.abs().clip(lower_bound=1e-12)).max())  # type: ignore[arg-type]


@pytest.mark.parametrize("unit", ["week", "day"])
class TestAgainstLifetimes:
    def test_the_inputs_are_the_standard_construction(self, unit: str) -> None:
        fits, expected = reference(unit)
        summary = clv.rfm_summary(golden_orders(), date.fromisoformat(fits["as_of"]), unit)
        joined = summary.join(expected, on="contact_id", suffix="_ref", how="full")
        assert joined.height == fits["customers"] == summary.height
        for column in ("frequency", "recency", "T", "monetary_value"):
            assert (joined[column] - joined[f"{column}_ref"]).abs().max() < 1e-7, column

    def test_the_fits_agree(self, unit: str) -> None:
        fits, _ = reference(unit)
        summary = clv.rfm_summary(golden_orders(), date.fromisoformat(fits["as_of"]), unit)
        for ours, theirs in ((clv.fit_bgnbd(summary), fits["bgnbd"]),
                             (clv.fit_gamma_gamma(summary), fits["gamma_gamma"])):  # fmt: skip
            assert ours.converged, ours.message
            for name, value in ours.params.items():
                assert value == pytest.approx(theirs[name], rel=TOLERANCE), name
            assert ours.log_likelihood == pytest.approx(theirs["log_likelihood"], rel=1e-9)
        assert clv.fit_gamma_gamma(summary).customers == fits["returning_customers"]

    def test_every_customers_predictions_agree(self, unit: str) -> None:
        fits, expected = reference(unit)
        summary = clv.rfm_summary(golden_orders(), date.fromisoformat(fits["as_of"]), unit)
        predicted = clv.predict(
            summary,
            clv.fit_bgnbd(summary),
            clv.fit_gamma_gamma(summary),
            time_unit=unit,
            prediction_horizon=fits["prediction_horizon"],
            clv_horizon_months=fits["clv_horizon_months"],
            discount_rate_monthly=fits["discount_rate_monthly"],
        )
        joined = predicted.join(expected, on="contact_id", suffix="_ref")
        assert joined.height == fits["customers"]
        for column in PREDICTIONS:
            assert relative_error(joined[column], joined[f"{column}_ref"]) < TOLERANCE, column


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def test_orders_of_one_day_are_one_purchase_and_later_ones_do_not_count() -> None:
    orders = pl.DataFrame(
        {
            "contact_id": ["a", "a", "a", "a", "b"],
            "ordered_at": [
                at("2026-01-01", 9),
                at("2026-01-01", 18),
                at("2026-01-15"),
                at("2026-03-01"),
                at("2026-01-08"),
            ],
            "total": [10.0, 5.0, 30.0, 99.0, 20.0],
        }
    )
    summary = clv.rfm_summary(orders, date(2026, 1, 29), "week")
    assert summary.to_dicts() == [
        {
            "contact_id": "a",
            "frequency": 1.0,
            "recency": 2.0,
            "T": 4.0,
            "monetary_value": 30.0,
            "historical_value": 45.0,
        },
        {
            "contact_id": "b",
            "frequency": 0.0,
            "recency": 0.0,
            "T": 3.0,
            "monetary_value": 0.0,
            "historical_value": 20.0,
        },
    ]
