"""`crm-api metrics report`: the metrics as one self-contained HTML page, for people who would
rather look than read. Charts are drawn by matplotlib as inline SVG (no scripts, nothing
fetched), tables are plain HTML."""

import html
import io
from datetime import datetime
from typing import Any

import polars as pl

from crm_api.analytics.schemas import (
    NpsReport,
    PipelineReport,
    RetentionReport,
    RfmReport,
    SupportReport,
)

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2.5rem; }
table { border-collapse: collapse; margin: 0.5rem 0; }
td, th { padding: 0.2rem 0.8rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { color: #666; font-size: 0.9rem; }
svg { max-width: 100%; height: auto; }
"""


def _svg(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float = 8, height: float = 3.5) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.2f}"
        return html.escape("—" if value is None else str(value))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def cohort_heatmap(report: RetentionReport) -> str:
    if not report.cohorts:
        return "<p class='note'>No orders yet.</p>"
    cells = pl.DataFrame([c.model_dump() for c in report.cohorts])
    grid = cells.pivot(on="period", index="cohort", values="retention", sort_columns=True).sort(
        "cohort"
    )
    periods = [c for c in grid.columns if c != "cohort"]
    values = grid.select(periods).to_numpy()
    figure, axes = _figure(8, max(2.5, 0.35 * grid.height + 1))
    image = axes.imshow(values, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    axes.set_xticks(range(len(periods)), periods)
    axes.set_yticks(range(grid.height), grid["cohort"].to_list())
    axes.set_xlabel("months after the first order")
    figure.colorbar(image, ax=axes, label="share of the cohort ordering")
    return _svg(figure)


def clv_histogram(values: pl.Series, currency: str | None) -> str:
    if values.len() == 0:
        return "<p class='note'>No CLV run has succeeded for the whole workspace yet.</p>"
    figure, axes = _figure()
    axes.hist(values.to_numpy(), bins=40, color="#3b7dd8")
    axes.set_xlabel(f"predicted CLV ({currency or 'order currency'})")
    axes.set_ylabel("customers")
    return _svg(figure)


def nps_trend(report: NpsReport) -> str:
    months = [(g.group, g.nps, g.margin_of_error or 0.0) for g in report.groups
              if g.nps is not None]  # fmt: skip
    if not months:
        return "<p class='note'>No NPS answers in the window.</p>"
    figure, axes = _figure()
    x = [month for month, _, _ in months]
    axes.fill_between(x, [score - error for _, score, error in months],
                      [score + error for _, score, error in months], alpha=0.2)  # fmt: skip
    axes.plot(x, [score for _, score, _ in months], marker="o")
    axes.axhline(0, color="#999", linewidth=0.8)
    axes.set_ylim(-100, 100)
    axes.set_ylabel("NPS (band: 95% margin of error)")
    return _svg(figure)


def pipeline_funnels(report: PipelineReport) -> str:
    if not report.pipelines:
        return "<p class='note'>No pipelines.</p>"
    parts = []
    for pipeline in report.pipelines:
        figure, axes = _figure(8, max(1.5, 0.45 * len(pipeline.stages) + 1))
        names = [s.name for s in pipeline.stages] + ["won"]
        counts = [s.reached for s in pipeline.stages] + [pipeline.won]
        axes.barh(names[::-1], counts[::-1], color="#3b7dd8")
        axes.set_xlabel("deals that reached the stage")
        axes.set_title(pipeline.name)
        parts.append(_svg(figure))
    return "".join(parts)


def render(
    *,
    workspace: str,
    as_of: datetime,
    nps: NpsReport,
    retention: RetentionReport,
    rfm: RfmReport,
    pipeline: PipelineReport,
    support: SupportReport,
    clv_values: pl.Series,
) -> str:
    """The whole page."""
    overall = nps.overall
    rfm_rows = [[s.segment, s.customers, s.customer_share, s.value, s.value_share]
                for s in rfm.segments]  # fmt: skip
    pipeline_rows = [[p.name, p.won, p.lost, p.win_rate, p.average_cycle_days]
                     for p in pipeline.pipelines]  # fmt: skip
    service_rows = [
        ["first response (minutes)", support.first_response_minutes.median,
         support.first_response_minutes.p90, support.first_response_sla.compliance],
        ["resolution (minutes)", support.resolution_minutes.median,
         support.resolution_minutes.p90, support.resolution_sla.compliance],
    ]  # fmt: skip
    period = retention.period
    sections = [
        f"<h1>{html.escape(workspace)}: customer metrics</h1>",
        f"<p class='note'>As of {as_of:%Y-%m-%d %H:%M} UTC. Definitions: the API docs of "
        "/v1/metrics.</p>",
        "<h2>Retention</h2>",
        _table(
            ["retention rate (last 30 days)", "churn", "repeat purchase rate"],
            [[period.retention_rate, period.churn_rate, retention.repeat_purchase_rate]],
        ),
        cohort_heatmap(retention),
        "<h2>Customer lifetime value</h2>",
        clv_histogram(clv_values, rfm.currency),
        "<h2>RFM segments</h2>",
        _table(["segment", "customers", "share", "value", "value share"], rfm_rows),
        "<h2>Net Promoter Score</h2>",
        _table(
            ["NPS", "± (95%)", "answers", "promoters", "detractors"],
            [
                [
                    overall.nps,
                    overall.margin_of_error,
                    overall.responses,
                    overall.promoters,
                    overall.detractors,
                ]
            ],
        ),
        nps_trend(nps),
        "<h2>Pipelines</h2>",
        _table(["pipeline", "won", "lost", "win rate", "average cycle (days)"], pipeline_rows),
        pipeline_funnels(pipeline),
        "<h2>Service</h2>",
        _table(["", "median", "90th percentile", "SLA compliance"], service_rows),
        _table(
            ["CSAT answers", "average", "satisfied (4-5)"],
            [[support.csat.responses, support.csat.average, support.csat.satisfied_share]],
        ),
    ]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(workspace)}: customer metrics</title><style>{STYLE}</style>"
        f"</head><body>{''.join(sections)}</body></html>"
    )
