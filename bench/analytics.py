"""The analytics refresh at scale, ours against pandas + lifetimes, side by side in one run.

    .venv/bin/python bench/analytics.py \
        --database-url postgresql://postgres@127.0.0.1:5432/crm_bench [--customers 1000000]

The database must be migrated (`crm-api migrate`). A new workspace gets N customers with about
10 orders each (fixed seed: the BG/NBD process, Gamma-Gamma spend), loaded by COPY. Then, each
side in a process of its own, the same steps on the same orders: load from PostgreSQL, the CLV
summary, the BG/NBD and Gamma-Gamma fits, the CLV predictions, RFM and the cohort matrix.
Ours: analytics/ (COPY into Polars, scipy fits); theirs: bench/analytics_lifetimes.py
(pandas.read_sql, lifetimes 0.11.3) in the lifetimes environment, which the golden-file script
makes (made here if missing, with psycopg2 added). Prints seconds and peak RSS so far after
each step, and the ratios. `--reuse` measures again on the last run's workspace."""

import argparse
import asyncio
import io
import json
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import polars as pl
from sqlalchemy import make_url

from crm_api import models  # noqa: F401  (every table, for the mappers)
from crm_api.analytics import clv, retention, rfm
from crm_api.analytics.load import fixed_width_frame
from crm_api.analytics.repository import ORDER_SCHEMA, Population, order_rows
from crm_api.contacts.models import unknown_consent
from crm_api.core.db import create_engine, create_sessionmaker, new_id
from crm_api.core.embedded import to_asyncpg_url
from crm_api.settings import Settings
from crm_api.workspaces.service import create_workspace

WORKSPACE = "Bench analytics"
AS_OF = datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC)
START = date(2024, 7, 1)
DAYS = (AS_OF.date() - START).days + 1
ROOT = Path(__file__).resolve().parents[1]
LIFETIMES_VENV = Path("/tmp/crm-api-lifetimes-venv")


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, it starts anew at exec,
    so a side does not inherit the memory of the process that started it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(n: int, seed: int = 2026) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per order: the customer's index, the day (from START) and the total. The BG/NBD
    process: purchases at a gamma-distributed Poisson rate (r 2, alpha 40 days), dropping out
    after each with a beta-distributed probability (a 1, b 9); Gamma-Gamma spend."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, DAYS - 30, n)
    rate = rng.gamma(2.0, 1 / 40, n)
    dropout = rng.beta(1.0, 9.0, n)
    purchases = np.minimum(rng.geometric(dropout), 400)  # made before dropping out
    customer = np.repeat(np.arange(n), purchases)
    starts = np.cumsum(purchases) - purchases
    gaps = rng.exponential(1 / rate[customer])
    gaps[starts] = 0.0  # the first purchase is on the first day
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[starts], purchases)
    day = first[customer] + elapsed
    kept = day < DAYS
    customer, day = customer[kept], day[kept].astype(np.int64)
    scale = rng.gamma(4.0, 10.0, n)
    total = np.round(rng.gamma(3.0, 1.0, customer.size) * scale[customer], 2) + 1
    return customer, day, total


async def connect(database_url: str) -> asyncpg.Connection:
    url = make_url(to_asyncpg_url(database_url))
    return await asyncpg.connect(
        user=url.username, password=url.password, host=url.host, port=url.port,
        database=url.database,
    )  # fmt: skip


async def copy_frame(connection: asyncpg.Connection, table: str, frame: pl.DataFrame) -> None:
    for chunk in frame.iter_slices(500_000):
        buffer = io.BytesIO()
        chunk.write_csv(buffer, include_header=False)
        buffer.seek(0)
        await connection.copy_to_table(table, source=buffer, columns=chunk.columns, format="csv")


async def load(database_url: str, n: int) -> uuid.UUID:
    settings = Settings(database_url=database_url)
    engine = create_engine(database_url, settings)
    async with create_sessionmaker(engine).begin() as session:
        workspace, _, _ = await create_workspace(session, WORKSPACE)
    await engine.dispose()
    customer, day, total = generate(n)
    ws = str(workspace.id)
    contact_ids = [str(new_id()) for _ in range(n)]
    contacts = pl.DataFrame(
        {"workspace_id": [ws] * n, "id": contact_ids, "first_name": ["Bench"] * n,
         "consent": [json.dumps(unknown_consent())] * n}
    )  # fmt: skip
    moments = [
        datetime.combine(START, datetime.min.time(), UTC) + timedelta(days=int(d), hours=12)
        for d in range(DAYS)
    ]
    stamp = pl.Series([m.isoformat() for m in moments])
    orders = pl.DataFrame(
        {
            "workspace_id": pl.repeat(ws, customer.size, eager=True),
            "id": [str(new_id()) for _ in range(customer.size)],
            "contact_id": pl.Series(contact_ids).gather(customer),
            "status": pl.repeat("paid", customer.size, eager=True),
            "ordered_at": stamp.gather(day),
            "paid_at": stamp.gather(day),
            "currency": pl.repeat("EUR", customer.size, eager=True),
            "total": total,
        }
    )
    connection = await connect(database_url)
    try:
        started = time.perf_counter()
        await copy_frame(connection, "contacts", contacts)
        print(f"  {n:,} contacts in {time.perf_counter() - started:,.0f} s", flush=True)
        started = time.perf_counter()
        await copy_frame(connection, "orders", orders)
        print(f"  {orders.height:,} orders in {time.perf_counter() - started:,.0f} s", flush=True)
        await connection.execute("ANALYZE contacts; ANALYZE orders")
    finally:
        await connection.close()
    return workspace.id


async def last_workspace(database_url: str) -> uuid.UUID:
    connection = await connect(database_url)
    try:
        found = await connection.fetchval(
            "SELECT id FROM workspaces WHERE name = $1 ORDER BY created_at DESC LIMIT 1", WORKSPACE
        )
    finally:
        await connection.close()
    assert found is not None, "no workspace of an earlier run"
    return uuid.UUID(str(found))


def report(step: str, started: float) -> float:
    now = time.perf_counter()
    print(json.dumps({"step": step, "seconds": now - started, "peak_mib": peak_mib()}), flush=True)
    return now


async def ours(database_url: str, workspace_id: uuid.UUID) -> None:
    """Our side, in a process of its own (so its peak memory is its own)."""
    settings = Settings(database_url=database_url)
    engine = create_engine(database_url, settings)
    started = time.perf_counter()
    async with create_sessionmaker(engine)() as session:
        statement = order_rows(Population(workspace_id), AS_OF, "EUR")
        orders = await fixed_width_frame(session, statement, ORDER_SCHEMA)
    await engine.dispose()
    started = report("load from PostgreSQL", started)
    print(json.dumps({"orders": orders.height, "customers": orders["contact_id"].n_unique()}))
    summary = clv.rfm_summary(orders, AS_OF.date(), "week")
    started = report("summary (frequency, recency, T, monetary)", started)
    bgnbd, gamma_gamma = clv.fit_bgnbd(summary), clv.fit_gamma_gamma(summary)
    assert bgnbd.converged, bgnbd.message
    assert gamma_gamma.converged, gamma_gamma.message
    started = report("fits (BG/NBD, Gamma-Gamma)", started)
    clv.predict(summary, bgnbd, gamma_gamma, time_unit="week", prediction_horizon=52,
                clv_horizon_months=12, discount_rate_monthly=0.01)  # fmt: skip
    started = report("CLV (expected purchases, P(alive), 12-month CLV)", started)
    rfm.rfm(orders, AS_OF.date())
    started = report("RFM (values, quintile scores)", started)
    retention.cohort_matrix(orders, AS_OF.date())
    report("retention (monthly cohort matrix)", started)
    print(json.dumps({"fits": {"bgnbd": bgnbd.params, "gamma_gamma": gamma_gamma.params}}))


def lifetimes_python() -> Path:
    python = LIFETIMES_VENV / "bin" / "python"
    if not python.exists():
        script = ROOT / "tests" / "analytics" / "golden" / "lifetimes_reference.py"
        subprocess.run([sys.executable, str(script), "--environment-only"], check=True)
    probe = subprocess.run([str(python), "-c", "import psycopg2"], capture_output=True)
    if probe.returncode != 0:
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "psycopg2-binary==2.9.10"], check=True)
    return python


def run_side(command: list[str]) -> tuple[list[dict[str, Any]], float]:
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return lines, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--side", choices=["ours"], help=argparse.SUPPRESS)
    parser.add_argument("--workspace-id", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    database_url = to_asyncpg_url(arguments.database_url)
    if arguments.side == "ours":
        asyncio.run(ours(database_url, uuid.UUID(arguments.workspace_id)))
        return
    if arguments.reuse:
        workspace_id = asyncio.run(last_workspace(database_url))
    else:
        print(f"loading {arguments.customers:,} customers", flush=True)
        workspace_id = asyncio.run(load(database_url, arguments.customers))
    ours_lines, ours_wall = run_side(
        [sys.executable, __file__, "--database-url", arguments.database_url, "--side", "ours",
         "--workspace-id", str(workspace_id)]
    )  # fmt: skip
    print("ours done", json.dumps(ours_lines[-1]), flush=True)
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    theirs_lines, theirs_wall = run_side(
        [str(lifetimes_python()), str(ROOT / "bench" / "analytics_lifetimes.py"), "--dsn", dsn,
         "--workspace-id", str(workspace_id), "--as-of", AS_OF.isoformat()]
    )  # fmt: skip
    steps = [line for line in ours_lines if "step" in line]
    print()
    (sizes,) = [line for line in ours_lines if "orders" in line]
    print(f"{sizes['customers']:,} customers, {sizes['orders']:,} orders (workspace "
          f"{workspace_id}); as of {AS_OF:%Y-%m-%d}")  # fmt: skip
    print()
    print(
        "| step | ours s | ours peak MiB | pandas + lifetimes s | their peak MiB | times faster |"
    )
    print("|---|---|---|---|---|---|")
    for mine, theirs in zip(steps, theirs_lines, strict=True):
        ratio = theirs["seconds"] / mine["seconds"] if mine["seconds"] else float("inf")
        print(f"| {mine['step']} | {mine['seconds']:,.2f} | {mine['peak_mib']:,.0f} | "
              f"{theirs['seconds']:,.2f} | {theirs['peak_mib']:,.0f} | {ratio:,.1f} |")  # fmt: skip
    ours_total = sum(s["seconds"] for s in steps)
    theirs_total = sum(s["seconds"] for s in theirs_lines)
    print(f"| **whole refresh** | {ours_total:,.1f} | {steps[-1]['peak_mib']:,.0f} | "
          f"{theirs_total:,.1f} | {theirs_lines[-1]['peak_mib']:,.0f} | "
          f"{theirs_total / ours_total:,.1f} |")  # fmt: skip
    print(f"\nprocess wall time: ours {ours_wall:,.1f} s, theirs {theirs_wall:,.1f} s")
    print("our fits:", json.dumps(ours_lines[-1]["fits"]))


if __name__ == "__main__":
    main()
