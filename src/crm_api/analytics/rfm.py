"""RFM: per customer, recency (days from the last order to `as_of`), frequency (orders) and
monetary value (their total), each scored 1-5 by quintile of the customers ranked on it, 5 for
the best fifth (most recent, most frequent, highest value): ceil(5 x rank / customers), tied
customers sharing the highest rank they tie at (so a sole customer scores 5). The named
segments map the R and F scores as the common RFM grid does (SEGMENTS: champions R 5 and
F 4-5, ..., hibernating R 1-2 and F 1-2)."""

from datetime import date

import polars as pl

# (R scores, F scores) → segment; every one of the 25 combinations is named once.
SEGMENTS: list[tuple[str, set[int], set[int]]] = [
    ("hibernating", {1, 2}, {1, 2}),
    ("at_risk", {1, 2}, {3, 4}),
    ("cannot_lose_them", {1, 2}, {5}),
    ("about_to_sleep", {3}, {1, 2}),
    ("need_attention", {3}, {3}),
    ("loyal_customers", {3, 4}, {4, 5}),
    ("promising", {4}, {1}),
    ("new_customers", {5}, {1}),
    ("potential_loyalists", {4, 5}, {2, 3}),
    ("champions", {5}, {4, 5}),
]


def _quintile(value: pl.Expr) -> pl.Expr:
    """1-5 by the value's rank among the customers, highest values scoring 5."""
    return (value.rank("max") * 5 / pl.len()).ceil().cast(pl.Int8)


def _segment() -> pl.Expr:
    expression = pl.lit(None, dtype=pl.String)
    for name, r_scores, f_scores in reversed(SEGMENTS):
        expression = (
            pl.when(pl.col("r_score").is_in(r_scores) & pl.col("f_score").is_in(f_scores))
            .then(pl.lit(name))
            .otherwise(expression)
        )
    return expression


def rfm(orders: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """`orders` has contact_id, ordered_at (datetime) and total: one row per customer with an
    order by `as_of`: recency, frequency, monetary, r/f/m scores, rfm_score ("545") and
    segment."""
    per_customer = (
        orders.lazy()
        .filter(pl.col("ordered_at").dt.date() <= as_of)
        .group_by("contact_id")
        .agg(
            (pl.lit(as_of) - pl.col("ordered_at").dt.date().max()).dt.total_days().alias("recency"),
            pl.len().alias("frequency"),
            pl.col("total").sum().alias("monetary"),
        )
    )
    return (
        per_customer.with_columns(
            _quintile(-pl.col("recency")).alias("r_score"),
            _quintile(pl.col("frequency")).alias("f_score"),
            _quintile(pl.col("monetary")).alias("m_score"),
        )
        .with_columns(
            pl.concat_str(pl.col("r_score"), pl.col("f_score"), pl.col("m_score")).alias(
                "rfm_score"
            ),
            _segment().alias("segment"),
        )
        .sort("contact_id")
        .collect()
    )


def segment_summary(scored: pl.DataFrame) -> pl.DataFrame:
    """Per named segment: customers, their share, their total value and its share."""
    return (
        scored.group_by("segment")
        .agg(pl.len().alias("customers"), pl.col("monetary").sum().alias("value"))
        .with_columns(
            (pl.col("customers") / pl.col("customers").sum()).alias("customer_share"),
            (pl.col("value") / pl.col("value").sum()).alias("value_share"),
        )
        .sort("value", descending=True)
    )
