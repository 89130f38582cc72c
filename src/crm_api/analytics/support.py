"""Service metrics of the tickets opened in a window, as they stood at `as_of`. First response
and resolution times are from a ticket's creation, in minutes, over the tickets responded to
(resolved) by then: their median, 90th percentile (linear interpolation) and mean. SLA
compliance, per target: of the tickets whose target was met or whose due time has passed,
the share met on time. CSAT: the mean of the 1-5 answers given in the window, and the share
that were 4 or 5."""

from datetime import datetime
from typing import Any

import polars as pl


def _minutes(frame: pl.DataFrame, end: str, as_of: datetime) -> dict[str, Any]:
    done = frame.filter(pl.col(end) <= as_of)
    minutes = (done[end] - done["created_at"]).dt.total_seconds() / 60
    if done.height == 0:
        return {"count": 0, "median": None, "p90": None, "mean": None}
    return {
        "count": done.height,
        "median": minutes.median(),
        "p90": minutes.quantile(0.9, interpolation="linear"),
        "mean": minutes.mean(),
    }


def _compliance(frame: pl.DataFrame, end: str, due: str, as_of: datetime) -> dict[str, object]:
    with_target = frame.filter(pl.col(due).is_not_null())
    met = with_target.filter((pl.col(end) <= pl.col(due)) & (pl.col(end) <= as_of)).height
    breached = with_target.filter(
        (pl.col(due) <= as_of) & (pl.col(end).is_null() | (pl.col(end) > pl.col(due)))
    ).height
    return {"met": met, "breached": breached,
            "compliance": met / (met + breached) if met + breached else None}  # fmt: skip


def support_metrics(
    tickets: pl.DataFrame, csat_scores: pl.Series, as_of: datetime
) -> dict[str, object]:
    """`tickets`: created_at, first_responded_at, resolved_at, first_response_due_at,
    resolution_due_at; `csat_scores`: the 1-5 answers."""
    answers = csat_scores.len()
    return {
        "tickets": tickets.height,
        "first_response_minutes": _minutes(tickets, "first_responded_at", as_of),
        "resolution_minutes": _minutes(tickets, "resolved_at", as_of),
        "first_response_sla": _compliance(
            tickets, "first_responded_at", "first_response_due_at", as_of
        ),
        "resolution_sla": _compliance(tickets, "resolved_at", "resolution_due_at", as_of),
        "csat": {
            "responses": answers,
            "average": csat_scores.mean() if answers else None,
            "satisfied_share": float((csat_scores >= 4).sum()) / answers if answers else None,
        },
    }
