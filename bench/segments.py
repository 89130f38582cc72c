"""Segments at scale: preview a three-condition filter, build a dynamic segment and refresh it.

    .venv/bin/python bench/segments.py \
        --database-url postgresql://postgres@127.0.0.1:5432/crm_bench [--contacts 1000000]

The database must be migrated (`crm-api migrate`). A new workspace gets N contacts in 1/100 as
many companies, and contact metrics for 40% of them (what their paid orders add up to), loaded
with COPY and ANALYZEd. The filter joins all three sources a segment can use:

    lifecycle_stage = customer AND company.industry in (Software, Fintech)
    AND metrics.total_spent >= 500

Then, through the service functions the API calls (one transaction each, committed):
the preview (count + first page of 50), cold and warm; the first build of a dynamic segment on
that filter; a full refresh when nothing changed; a full refresh after 1% of the contacts
changed stage (each joiner and leaver is announced as an event); and the worker's incremental
refresh of 1,000 contacts queued as changed. Prints a table of seconds per step."""

import argparse
import asyncio
import csv
import io
import json
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import make_url

from crm_api.contacts.models import unknown_consent
from crm_api.core.auth import Principal, principal_of_secret
from crm_api.core.db import create_engine, create_sessionmaker, new_id
from crm_api.core.embedded import to_asyncpg_url
from crm_api.core.scopes import Scope
from crm_api.demo import FIRST_NAMES, LAST_NAMES
from crm_api.segments.schemas import FILTER, SegmentCreate, SegmentKind, SegmentPreview
from crm_api.segments.service import (
    create_segment,
    preview_segment,
    refresh_segment,
    refresh_stale_members,
)
from crm_api.settings import Settings
from crm_api.workspaces.service import create_workspace

STAGES = ["subscriber", "lead", "qualified", "customer", "churned"]
INDUSTRIES = ["Software", "Fintech", "Retail", "Manufacturing", "Health", "Logistics", "Media"]
TAGS = ["newsletter", "vip", "webinar", "referral", "partner"]
FILTER_JSON = {
    "all": [
        {"field": "lifecycle_stage", "op": "eq", "value": "customer"},
        {"field": "company.industry", "op": "in", "value": ["Software", "Fintech"]},
        {"field": "metrics.total_spent", "op": "gte", "value": 500},
    ]
}
WORKSPACE = "Bench segments"
CONSENT = json.dumps(unknown_consent())


async def connect(database_url: str) -> asyncpg.Connection:
    url = make_url(to_asyncpg_url(database_url))
    return await asyncpg.connect(
        user=url.username, password=url.password, host=url.host, port=url.port,
        database=url.database,
    )  # fmt: skip


async def copy_rows(
    connection: asyncpg.Connection, table: str, columns: list[str], rows: AsyncIterator[list[Any]]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        count = 0
        async for row in rows:
            writer.writerow(row)
            count += 1
            if count % 10_000 == 0:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()

    await connection.copy_to_table(table, source=chunks(), columns=columns, format="csv")


async def load(connection: asyncpg.Connection, workspace_id: uuid.UUID, n: int) -> list[uuid.UUID]:
    """N contacts, N/100 companies, metrics for 40% of the contacts; the contacts' ids."""
    rng = random.Random(8)
    company_ids = [new_id() for _ in range(max(1, n // 100))]
    contact_ids = [new_id() for _ in range(n)]
    ws = str(workspace_id)

    async def companies() -> AsyncIterator[list[Any]]:
        for i, id in enumerate(company_ids):
            yield [ws, str(id), f"Company {i}", rng.choice(INDUSTRIES)]

    async def contacts() -> AsyncIterator[list[Any]]:
        for i, id in enumerate(contact_ids):
            tags = "{" + ",".join(rng.sample(TAGS, rng.randint(0, 2))) + "}"
            company = str(rng.choice(company_ids)) if rng.random() < 0.8 else ""
            yield [ws, str(id), rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES),
                   f"user{i}@example.org", rng.choice(STAGES), tags, company, CONSENT]  # fmt: skip

    async def metrics() -> AsyncIterator[list[Any]]:
        start = datetime(2025, 1, 1, tzinfo=UTC)
        for id in contact_ids:
            if rng.random() >= 0.4:
                continue
            orders = rng.randint(1, 12)
            first = start + timedelta(days=rng.randint(0, 300))
            last = first + timedelta(days=rng.randint(0, 330))
            spent = f"{orders * rng.uniform(20, 180):.2f}"
            yield [ws, str(id), orders, spent, first.isoformat(), last.isoformat(), 0]

    started = time.perf_counter()
    await copy_rows(connection, "companies", ["workspace_id", "id", "name", "industry"],
                    companies())  # fmt: skip
    await copy_rows(
        connection,
        "contacts",
        ["workspace_id", "id", "first_name", "last_name", "email", "lifecycle_stage", "tags",
         "company_id", "consent"],
        contacts(),
    )  # fmt: skip
    await copy_rows(
        connection,
        "contact_metrics",
        ["workspace_id", "contact_id", "order_count", "total_spent", "first_order_at",
         "last_order_at", "open_ticket_count"],
        metrics(),
    )  # fmt: skip
    await connection.execute("ANALYZE companies; ANALYZE contacts; ANALYZE contact_metrics")
    print(f"loaded {n:,} contacts in {time.perf_counter() - started:,.0f} s", flush=True)
    return contact_ids


class Bench:
    def __init__(self, database_url: str) -> None:
        self.settings = Settings(database_url=database_url)
        self.engine = create_engine(database_url, self.settings)
        self.sessionmaker = create_sessionmaker(self.engine)
        self.rows: list[tuple[str, float, str]] = []

    async def timed(
        self, step: str, work: Callable[[Any], Awaitable[Any]], describe: Callable[[Any], str]
    ) -> Any:
        """One transaction, committed: its time, commit included."""
        started = time.perf_counter()
        async with self.sessionmaker.begin() as session:
            result = await work(session)
        seconds = time.perf_counter() - started
        self.rows.append((step, seconds, describe(result)))
        print(f"  {step}: {seconds:,.3f} s, {describe(result)}", flush=True)
        return result


async def last_workspace(connection: asyncpg.Connection) -> tuple[uuid.UUID, Principal]:
    row = await connection.fetchrow(
        "SELECT w.id, k.id AS key_id FROM workspaces w JOIN api_keys k ON k.workspace_id = w.id "
        "WHERE w.name = $1 ORDER BY w.created_at DESC LIMIT 1",
        WORKSPACE,
    )
    assert row is not None, "no workspace of an earlier run"
    return row["id"], Principal(row["id"], row["key_id"], frozenset({Scope.admin}))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument(
        "--reuse", action="store_true", help="measure on the last run's workspace, not a new one"
    )
    arguments = parser.parse_args()
    database_url = to_asyncpg_url(arguments.database_url)
    bench = Bench(database_url)
    connection = await connect(database_url)
    try:
        if arguments.reuse:
            workspace_id, principal = await last_workspace(connection)
            rows = await connection.fetch(
                "SELECT id FROM contacts WHERE workspace_id = $1 ORDER BY id", workspace_id
            )
            contact_ids = [row["id"] for row in rows]
        else:
            async with bench.sessionmaker.begin() as session:
                workspace, _, key = await create_workspace(session, WORKSPACE)
                workspace_id = workspace.id
            async with bench.sessionmaker.begin() as session:
                found = await principal_of_secret(session, key)
            assert found is not None
            principal = found
            contact_ids = await load(connection, workspace_id, arguments.contacts)
        n = len(contact_ids)
        filter = FILTER.validate_python(FILTER_JSON)
        preview = SegmentPreview(filter=filter, limit=50)

        def counted(result: tuple[int, list[Any]]) -> str:
            return f"{result[0]:,} match, {len(result[1])} returned"

        await bench.timed("preview (cold)", lambda s: preview_segment(s, principal, preview),
                          counted)  # fmt: skip
        warm = []
        for _ in range(5):
            await bench.timed("preview (warm)", lambda s: preview_segment(s, principal, preview),
                              counted)  # fmt: skip
            warm.append(bench.rows.pop()[1])
        bench.rows.append(("preview (warm, median of 5)", statistics.median(warm), ""))

        create = SegmentCreate(name="Big spenders", kind=SegmentKind.dynamic, filter=filter)
        segment = await bench.timed(
            "dynamic segment: first build",
            lambda s: create_segment(s, principal, create),
            lambda seg: f"{seg.member_count:,} members",
        )
        await bench.timed(
            "full refresh, nothing changed",
            lambda s: refresh_segment(s, principal, segment.id),
            lambda seg: f"{seg.member_count:,} members",
        )
        rng = random.Random(9)
        changed = rng.sample(contact_ids, n // 100)
        await connection.execute(
            "UPDATE contacts SET lifecycle_stage = CASE WHEN lifecycle_stage = 'customer' "
            "THEN 'churned' ELSE 'customer' END, updated_at = now() "
            "WHERE workspace_id = $1 AND id = ANY($2::uuid[])",
            workspace_id,
            changed,
        )
        before = await connection.fetchval(
            "SELECT count(*) FROM events WHERE workspace_id = $1", workspace_id
        )
        await bench.timed(
            f"full refresh, {len(changed):,} contacts changed stage",
            lambda s: refresh_segment(s, principal, segment.id),
            lambda seg: f"{seg.member_count:,} members",
        )
        after = await connection.fetchval(
            "SELECT count(*) FROM events WHERE workspace_id = $1", workspace_id
        )
        bench.rows[-1] = (bench.rows[-1][0], bench.rows[-1][1],
                          f"{bench.rows[-1][2]}, {after - before:,} member events")  # fmt: skip

        queued = rng.sample(contact_ids, 1_000)
        await connection.execute(
            "UPDATE contact_metrics SET total_spent = total_spent + 400 "
            "WHERE workspace_id = $1 AND contact_id = ANY($2::uuid[])",
            workspace_id,
            queued,
        )
        await connection.executemany(
            "INSERT INTO segment_stale_contacts (workspace_id, contact_id) VALUES ($1, $2)",
            [(workspace_id, id) for id in queued],
        )
        await bench.timed(
            "worker: 1,000 queued contacts",
            lambda s: refresh_stale_members(s, datetime.now(UTC)),
            lambda taken: f"{taken:,} contacts looked at",
        )
    finally:
        await connection.close()
        await bench.engine.dispose()

    print()
    print(f"{n:,} contacts, {max(1, n // 100):,} companies; filter: {json.dumps(FILTER_JSON)}")
    print()
    print("| step | seconds | result |")
    print("|---|---|---|")
    for step, seconds, result in bench.rows:
        print(f"| {step} | {seconds:,.3f} | {result} |")


if __name__ == "__main__":
    asyncio.run(main())
