"""Net Promoter Score: promoters answer 9-10, passives 7-8, detractors 0-6; NPS is the share of
promoters minus the share of detractors, in points (-100 to 100). Its margin of error is that
of a mean of +1 / 0 / -1 answers: 1.96 standard errors, in points (95%)."""

import polars as pl

Z_95 = 1.96


def nps(responses: pl.DataFrame, by: list[str] | None = None) -> pl.DataFrame:
    """`responses` has a 0-10 `score` (and the columns in `by`): per group, responses,
    promoters, passives, detractors, their shares, nps and margin_of_error."""
    score = pl.col("score")
    counts = [
        pl.len().alias("responses"),
        (score >= 9).sum().alias("promoters"),
        score.is_between(7, 8).sum().alias("passives"),
        (score <= 6).sum().alias("detractors"),
    ]
    grouped = (
        responses.group_by(by, maintain_order=True).agg(counts) if by else responses.select(counts)
    )
    n = pl.col("responses")
    promoter_share = pl.col("promoters") / n
    detractor_share = pl.col("detractors") / n
    variance = promoter_share + detractor_share - (promoter_share - detractor_share) ** 2
    frame = grouped.with_columns(
        promoter_share.alias("promoter_share"),
        (pl.col("passives") / n).alias("passive_share"),
        detractor_share.alias("detractor_share"),
        (100 * (promoter_share - detractor_share)).alias("nps"),
        (100 * Z_95 * (variance / n).sqrt()).alias("margin_of_error"),
    )
    return frame.sort(by) if by else frame
