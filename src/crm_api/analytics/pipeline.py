"""Sales metrics from the deals' stage history, as it stood at `as_of`. A deal reached an open
stage when it entered it or a later open stage of the pipeline, or won there (deals may skip
stages). Conversion from a stage is the share of the deals that reached it which reached the
next (the last open stage's next is winning). Win rate: of the deals closed in the window
(their last move as of `as_of` went to a won or lost stage, inside the window), the share won.
Sales cycle: from a won deal's creation to its win, in days."""

from datetime import datetime

import polars as pl


def pipeline_metrics(
    changes: pl.DataFrame,
    stages: pl.DataFrame,
    deals: pl.DataFrame,
    start: datetime | None,
    as_of: datetime,
) -> list[dict[str, object]]:
    """`changes`: deal_id, to_stage_id, changed_at (up to as_of); `stages`: stage_id,
    pipeline_id, pipeline_name, name, position, kind; `deals`: deal_id, created_at. One entry
    per pipeline with its funnel, win rate and cycle."""
    moves = changes.join(stages, left_on="to_stage_id", right_on="stage_id").filter(
        pl.col("changed_at") <= as_of
    )
    reach = moves.group_by("deal_id", "pipeline_id").agg(
        pl.col("position").filter(pl.col("kind") == "open").max().alias("furthest"),
        (pl.col("kind") == "won").any().alias("won_there"),
    )
    last = (
        moves.sort("changed_at").group_by("deal_id").agg(pl.all().last()).join(deals, on="deal_id")
    )
    in_window = pl.col("changed_at") >= start if start is not None else pl.lit(True)
    closed = last.filter(pl.col("kind").is_in(["won", "lost"]) & in_window)
    result = []
    for (pipeline_id, pipeline_name), open_stages in (
        stages.filter(pl.col("kind") == "open")
        .sort("position")
        .group_by("pipeline_id", "pipeline_name", maintain_order=True)
    ):
        deals_here = reach.filter(pl.col("pipeline_id") == pipeline_id)
        reached = [
            deals_here.filter((pl.col("furthest") >= position) | pl.col("won_there")).height
            for position in open_stages["position"]
        ]
        reached_next = [*reached[1:], int(deals_here["won_there"].sum())]
        funnel = [
            {
                "stage_id": stage_id,
                "name": name,
                "reached": count,
                "conversion_rate": following / count if count else None,
            }
            for stage_id, name, count, following in zip(
                open_stages["stage_id"], open_stages["name"], reached, reached_next, strict=True
            )
        ]
        closed_here = closed.filter(pl.col("pipeline_id") == pipeline_id)
        won = closed_here.filter(pl.col("kind") == "won")
        cycle_days = (won["changed_at"] - won["created_at"]).dt.total_seconds() / 86_400
        result.append(
            {
                "pipeline_id": pipeline_id,
                "name": pipeline_name,
                "stages": funnel,
                "won": won.height,
                "lost": closed_here.height - won.height,
                "win_rate": won.height / closed_here.height if closed_here.height else None,
                "average_cycle_days": cycle_days.mean() if won.height else None,
                "median_cycle_days": cycle_days.median() if won.height else None,
            }
        )
    return result
