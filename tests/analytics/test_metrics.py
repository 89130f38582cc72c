"""NPS, RFM and retention against fixtures computed by hand."""

from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import pytest

from crm_api.analytics import nps, pipeline, retention, rfm, support


def orders(*rows: tuple[str, str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "contact_id": [r[0] for r in rows],
            "ordered_at": [datetime.fromisoformat(r[1]).replace(hour=12, tzinfo=UTC) for r in rows],
            "total": [r[2] for r in rows],
        }
    )


class TestNps:
    def test_score_shares_and_margin_of_error(self) -> None:
        # 10 answers: 5 promoters (9, 9, 10, 10, 10), 2 passives (7, 8), 3 detractors (0, 5, 6).
        answers = pl.DataFrame({"score": [9, 9, 10, 10, 10, 7, 8, 0, 5, 6]})
        row = nps.nps(answers).row(0, named=True)
        assert (row["responses"], row["promoters"], row["passives"], row["detractors"]) == (
            10, 5, 2, 3,
        )  # fmt: skip
        assert row["nps"] == pytest.approx(20.0)
        assert (row["promoter_share"], row["detractor_share"]) == (0.5, 0.3)
        # Var = 0.5 + 0.3 - 0.2^2 = 0.76; MoE = 1.96 * sqrt(0.76 / 10) * 100 = 54.03
        assert row["margin_of_error"] == pytest.approx(54.0336, abs=1e-3)

    def test_by_group(self) -> None:
        answers = pl.DataFrame(
            {"score": [10, 0, 9, 9], "channel": ["email", "email", "web", "web"]}
        )
        by_channel = nps.nps(answers, ["channel"])
        assert by_channel.select("channel", "nps", "margin_of_error").rows() == [
            ("email", 0.0, pytest.approx(138.593, abs=1e-3)),  # 1.96 * sqrt(1 / 2) * 100
            ("web", 100.0, 0.0),
        ]


class TestRfm:
    def test_values_scores_and_segments(self) -> None:
        as_of = date(2026, 3, 31)
        data = orders(
            ("a", "2026-03-30", 500.0), ("a", "2026-03-01", 100.0), ("a", "2026-02-01", 100.0),
            ("b", "2026-03-20", 50.0), ("b", "2026-01-10", 50.0),
            ("c", "2026-02-15", 20.0),
            ("d", "2025-10-01", 900.0), ("d", "2025-09-01", 900.0), ("d", "2025-08-01", 900.0),
            ("e", "2025-06-01", 10.0),
            ("late", "2026-04-02", 1.0),
        )  # fmt: skip
        scored = rfm.rfm(data, as_of)
        rows = {r["contact_id"]: r for r in scored.iter_rows(named=True)}
        assert set(rows) == {"a", "b", "c", "d", "e"}
        assert (rows["a"]["recency"], rows["a"]["frequency"], rows["a"]["monetary"]) == (1, 3, 700)
        assert rows["e"]["recency"] == 303
        # Five customers: each rank is its own fifth; a and d tie at 3 orders (ranks 4-5 of 5,
        # both scoring 5), c and e at 1 (ranks 1-2, both 2).
        assert {c: r["r_score"] for c, r in rows.items()} == {
            "a": 5,
            "b": 4,
            "c": 3,
            "d": 2,
            "e": 1,
        }
        assert {c: r["f_score"] for c, r in rows.items()} == {
            "a": 5,
            "b": 3,
            "c": 2,
            "d": 5,
            "e": 2,
        }
        assert {c: r["m_score"] for c, r in rows.items()} == {
            "a": 4,
            "b": 3,
            "c": 2,
            "d": 5,
            "e": 1,
        }
        assert rows["a"]["rfm_score"] == "554"
        assert {c: r["segment"] for c, r in rows.items()} == {
            "a": "champions", "b": "potential_loyalists", "c": "about_to_sleep",
            "d": "cannot_lose_them", "e": "hibernating",
        }  # fmt: skip
        summary = rfm.segment_summary(scored)
        assert summary.row(0, named=True) == {
            "segment": "cannot_lose_them", "customers": 1, "value": 2700.0,
            "customer_share": 0.2, "value_share": 2700 / 3530,
        }  # fmt: skip

    def test_every_score_pair_has_one_segment(self) -> None:
        names = [
            [name for name, r, f in rfm.SEGMENTS if r_score in r and f_score in f]
            for r_score in range(1, 6)
            for f_score in range(1, 6)
        ]
        assert all(len(found) == 1 for found in names)


class TestRetention:
    DATA = orders(
        ("a", "2026-01-05", 1.0), ("a", "2026-02-07", 1.0), ("a", "2026-03-09", 1.0),
        ("b", "2026-01-20", 1.0), ("b", "2026-03-02", 1.0),
        ("c", "2026-01-28", 1.0),
        ("d", "2026-02-11", 1.0), ("d", "2026-02-25", 1.0), ("d", "2026-03-30", 1.0),
        ("e", "2026-03-15", 1.0),
    )  # fmt: skip

    def test_cohort_matrix(self) -> None:
        matrix = retention.cohort_matrix(self.DATA, date(2026, 3, 31))
        cells = {
            (r["cohort"].month, r["period"]): r["retention"] for r in matrix.iter_rows(named=True)
        }
        # January: a, b, c (3); February: a (1/3); March: a, b (2/3).
        assert cells[(1, 0)] == 1.0
        assert cells[(1, 1)] == pytest.approx(1 / 3)
        assert cells[(1, 2)] == pytest.approx(2 / 3)
        # February: d; March: d. March: e.
        assert (cells[(2, 0)], cells[(2, 1)], cells[(3, 0)]) == (1.0, 1.0, 1.0)
        assert matrix.filter(pl.col("period") == 0)["cohort_size"].to_list() == [3, 1, 1]

    def test_period_retention_rate(self) -> None:
        # March against February: S = {a, d}; active in March {a, b, d, e}, of which e is new
        # and b is back from January (reactivated): E = {a, d, e}, CRR = (3 - 1) / 2.
        march = retention.period_retention(self.DATA, date(2026, 3, 1), date(2026, 3, 31))
        assert march == {"start_customers": 2, "end_customers": 3, "new_customers": 1,
                         "reactivated_customers": 1, "retention_rate": 1.0,
                         "churn_rate": 0.0}  # fmt: skip
        # February against January: S = {a, b, c}; E = {a, d}, d new: CRR = 1/3.
        february = retention.period_retention(self.DATA, date(2026, 2, 1), date(2026, 3, 1))
        assert february["retention_rate"] == pytest.approx(1 / 3)
        assert february["churn_rate"] == pytest.approx(2 / 3)

    def test_repeat_purchase_rate(self) -> None:
        # a, b and d bought on two days or more; c and e once.
        assert retention.repeat_purchase_rate(self.DATA, date(2026, 3, 31)) == 0.6
        assert retention.repeat_purchase_rate(self.DATA, date(2026, 1, 31)) == 0.0


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class TestPipeline:
    STAGES = pl.DataFrame(
        {
            "stage_id": ["q", "p", "w", "l"],
            "pipeline_id": ["sales"] * 4,
            "pipeline_name": ["Sales"] * 4,
            "name": ["Qualified", "Proposal", "Won", "Lost"],
            "position": [0, 1, 2, 3],
            "kind": ["open", "open", "won", "lost"],
        }
    )
    # d1: q -> p -> won (10 days after creation); d2: q -> lost; d3: straight to p, still open;
    # d4: q; d5: q -> won on day 4, after as_of.
    MOVES = [
        ("d1", "q", "2026-01-01"), ("d1", "p", "2026-01-05"), ("d1", "w", "2026-01-11"),
        ("d2", "q", "2026-01-02"), ("d2", "l", "2026-01-20"),
        ("d3", "p", "2026-01-03"),
        ("d4", "q", "2026-01-04"),
        ("d5", "q", "2026-01-25"), ("d5", "w", "2026-03-01"),
    ]  # fmt: skip

    def metrics(self, start: datetime | None) -> dict[str, Any]:
        changes = pl.DataFrame(
            {
                "deal_id": [m[0] for m in self.MOVES],
                "to_stage_id": [m[1] for m in self.MOVES],
                "changed_at": [at(m[2]) for m in self.MOVES],
            }
        )
        deals = changes.group_by("deal_id").agg(pl.col("changed_at").min().alias("created_at"))
        (found,) = pipeline.pipeline_metrics(changes, self.STAGES, deals, start, at("2026-02-01"))
        return found

    def test_funnel_win_rate_and_cycle(self) -> None:
        found = self.metrics(None)
        # Qualified: d1-d5 (d3 skipped it, d5 counts as it stood: in q); Proposal: d1, d3.
        assert [(s["name"], s["reached"]) for s in found["stages"]] == [
            ("Qualified", 5), ("Proposal", 2),
        ]  # fmt: skip
        assert found["stages"][0]["conversion_rate"] == pytest.approx(2 / 5)
        assert found["stages"][1]["conversion_rate"] == pytest.approx(1 / 2)  # d1 won
        assert (found["won"], found["lost"], found["win_rate"]) == (1, 1, 0.5)
        assert found["average_cycle_days"] == pytest.approx(10.0)

    def test_the_window_counts_closings_inside_it(self) -> None:
        found = self.metrics(at("2026-01-15"))
        assert (found["won"], found["lost"], found["win_rate"]) == (0, 1, 0.0)
        assert found["average_cycle_days"] is None


class TestSupport:
    def test_times_compliance_and_csat(self) -> None:
        tickets = pl.DataFrame(
            {
                "created_at": [at("2026-01-01T00:00"), at("2026-01-01T00:00"),
                               at("2026-01-01T00:00"), at("2026-01-01T00:00")],
                # 30 min, 90 min, none yet, 60 min
                "first_responded_at": [at("2026-01-01T00:30"), at("2026-01-01T01:30"), None,
                                       at("2026-01-01T01:00")],
                "resolved_at": [at("2026-01-01T04:00"), None, None, None],
                # 60-minute targets; the third's is not due yet at as_of; the fourth has none.
                "first_response_due_at": [at("2026-01-01T01:00"), at("2026-01-01T01:00"),
                                          at("2026-01-02T00:00"), None],
                "resolution_due_at": [at("2026-01-01T08:00"), at("2026-01-01T08:00"), None, None],
            }
        )  # fmt: skip
        scores = pl.Series([5, 4, 2, 1, 5])
        found = support.support_metrics(tickets, scores, at("2026-01-01T12:00"))
        assert found["tickets"] == 4
        assert found["first_response_minutes"] == {
            "count": 3, "median": 60.0, "p90": pytest.approx(84.0), "mean": 60.0,
        }  # fmt: skip
        assert found["resolution_minutes"]["median"] == 240.0
        assert found["first_response_sla"] == {"met": 1, "breached": 1, "compliance": 0.5}
        assert found["resolution_sla"] == {"met": 1, "breached": 1, "compliance": 0.5}
        assert found["csat"] == {"responses": 5, "average": 3.4, "satisfied_share": 0.6}
