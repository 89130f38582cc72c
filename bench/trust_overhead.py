"""What row-level security and the audit log cost: one mixed workload (reads by id, list and
filtered pages, searches, updates, creations) against `crm-api serve` with each of them on and
off, in alternating rounds, at a million contacts.

    createdb crm_bench_trust
    .venv/bin/python bench/trust_overhead.py \
        --database-url postgresql://postgres@127.0.0.1:5432/crm_bench_trust [--reuse]

The contacts are written by SQL (a minute instead of ten through the API), with their email
index rows, then analysed. Prints, per configuration, requests/s and p50/p95 latency by kind of
request, and the throughput as a ratio of the one with both off."""

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import asyncpg
import httpx

from contacts_load import QUERIES, STAGES, TAGS
from crm_api.core.db import transaction
from crm_api.core.embedded import to_asyncpg_url
from crm_api.core.scopes import Scope
from crm_api.settings import Settings
from crm_api.workspaces.service import issue_api_key

CLI = [sys.executable, "-m", "crm_api"]
CONFIGS = {  # name: (row-level security, audit log)
    "neither": (False, False),
    "row-level security": (True, False),
    "audit log": (False, True),
    "both (the default)": (True, True),
}
# The mix, by weight: what a CRM front end and an ERP sync send.
MIX = {"get": 40, "list": 15, "filtered": 10, "search": 10, "update": 20, "create": 5}
KINDS = {"get": "reads", "list": "reads", "filtered": "reads", "search": "searches",
         "update": "writes", "create": "writes"}  # fmt: skip

LOAD = """
WITH people AS (
  SELECT n,
         (ARRAY['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Linus'])
           [1 + n % 8] AS first_name,
         (ARRAY['Nguyen', 'Smith', 'Garcia', 'Muller', 'Kowalski', 'Tanaka', 'Dang', 'Okafor'])
           [1 + n / 8 % 8] || (n % 997)::text AS last_name
  FROM generate_series(1, $2::int) AS n
), inserted AS (
  INSERT INTO contacts (workspace_id, id, first_name, last_name, email, phone, lifecycle_stage,
                        tags, source, external_id, consent)
  SELECT $1, gen_random_uuid(), first_name, last_name, 'user' || n || '@example.org',
         '+1415' || lpad((n % 10000000)::text, 7, '0'),
         (ARRAY['subscriber','lead','qualified','customer','churned'])[1 + n % 5],
         CASE WHEN n % 3 = 0 THEN ARRAY[]::text[] ELSE ARRAY[($3::text[])[1 + n % 7]] END,
         'import', 'BENCH-' || n,
         '{"email": {"status": "unknown", "updated_at": null},
           "sms": {"status": "unknown", "updated_at": null}}'::jsonb
  FROM people
  RETURNING workspace_id, id, email
)
INSERT INTO contact_emails (workspace_id, email, contact_id)
SELECT workspace_id, email, id FROM inserted
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cli(database_url: str, *args: str) -> str:
    env = {**os.environ, "CRM_DATABASE_URL": database_url}
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout


async def prepare(database_url: str, contacts: int, reuse: bool) -> tuple[str, list[str]]:
    """A workspace with `contacts` contacts (made now unless --reuse finds one), its key and a
    sample of contact ids."""
    _cli(database_url, "migrate")
    connection = await asyncpg.connect(database_url)
    try:
        workspace = await connection.fetchval(
            "SELECT id FROM workspaces WHERE name = 'Trust bench' ORDER BY created_at LIMIT 1"
        )
        if workspace is None or not reuse:
            key = _cli(database_url, "workspace", "create", "Trust bench", "--country", "US")
            workspace = await connection.fetchval(
                "SELECT id FROM workspaces WHERE name = 'Trust bench' "
                "ORDER BY created_at DESC LIMIT 1"
            )
            began = time.perf_counter()
            await connection.execute(LOAD, workspace, contacts, TAGS)
            await connection.execute("ANALYZE contacts; ANALYZE contact_emails")
            print(f"loaded {contacts:,} contacts in {time.perf_counter() - began:.0f} s")
        else:
            async with transaction(to_asyncpg_url(database_url), Settings()) as session:
                _, key = await issue_api_key(session, workspace, "bench", [Scope.admin])
        sample = await connection.fetch(
            "SELECT id FROM contacts TABLESAMPLE SYSTEM (1) WHERE workspace_id = $1 LIMIT 5000",
            workspace,
        )
    finally:
        await connection.close()
    return key.strip().splitlines()[-1], [str(row["id"]) for row in sample]


@dataclass
class Round:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # "kind status": count
    seconds: float = 0.0


async def workload(base_url: str, key: str, ids: list[str], seconds: float, conc: int) -> Round:
    result = Round()
    kinds = list(MIX)
    weights = list(MIX.values())
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {key}"}

    async def worker(rng: random.Random, client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            kind = rng.choices(kinds, weights)[0]
            if kind == "get":
                call = client.get(f"/v1/contacts/{rng.choice(ids)}")
            elif kind == "list":
                call = client.get("/v1/contacts", params={"limit": 50})
            elif kind == "filtered":
                stage, tag = rng.choice(STAGES), rng.choice(TAGS)
                call = client.get(
                    "/v1/contacts", params={"limit": 50, "lifecycle_stage": stage, "tag": tag}
                )
            elif kind == "search":
                call = client.get("/v1/contacts", params={"limit": 50, "q": rng.choice(QUERIES)})
            elif kind == "update":
                body = {"lifecycle_stage": rng.choice(STAGES)}
                call = client.patch(f"/v1/contacts/{rng.choice(ids)}", json=body)
            else:
                body = {"first_name": "New", "email": f"new-{uuid.uuid4().hex}@example.net"}
                call = client.post("/v1/contacts", json=body)
            began = time.perf_counter()
            response = await call
            result.latencies.setdefault(KINDS[kind], []).append(time.perf_counter() - began)
            result.requests += 1
            if response.status_code >= 400:
                name = f"{kind} {response.status_code}"
                result.errors[name] = result.errors.get(name, 0) + 1

    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        await asyncio.gather(*(worker(random.Random(n), client) for n in range(conc)))
    result.seconds = time.perf_counter() - began
    return result


async def measure(
    database_url: str, key: str, ids: list[str], name: str, seconds: float, concurrency: int
) -> Round:
    row_level_security, audit_log = CONFIGS[name]
    port = _free_port()
    env = {
        **os.environ,
        "CRM_DATABASE_URL": database_url,
        "CRM_ROW_LEVEL_SECURITY": str(row_level_security).lower(),
        "CRM_AUDIT_LOG": str(audit_log).lower(),
        "CRM_RATE_LIMIT_REQUESTS": "0",
        "CRM_LOG_LEVEL": "warning",
    }
    server = await asyncio.create_subprocess_exec(
        *CLI, "serve", "--host", "127.0.0.1", "--port", str(port),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url) as probe:
            for _ in range(300):
                try:
                    if (await probe.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        await workload(base_url, key, ids, 3, concurrency)  # warm the pool and the caches
        return await workload(base_url, key, ids, seconds, concurrency)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="keep the contacts of a past run")
    args = parser.parse_args()
    plain_url = args.database_url.replace("postgresql+asyncpg://", "postgresql://")
    key, ids = await prepare(plain_url, args.contacts, args.reuse)
    rounds: dict[str, list[Round]] = {name: [] for name in CONFIGS}
    for _ in range(args.rounds):
        for name in CONFIGS:
            rounds[name].append(
                await measure(plain_url, key, ids, name, args.seconds, args.concurrency)
            )
    rate = {
        name: statistics.median(r.requests / r.seconds for r in runs)
        for name, runs in rounds.items()
    }
    print(
        f"\n{args.contacts:,} contacts, {args.concurrency} in flight, "
        f"{args.rounds} x {args.seconds:.0f} s per configuration (median round)\n"
    )
    print("| configuration | req/s | vs neither | reads p50/p95 ms | searches p50/p95 ms "
          "| writes p50/p95 ms | errors |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, runs in rounds.items():
        merged: dict[str, list[float]] = {}
        for run in runs:
            for kind, values in run.latencies.items():
                merged.setdefault(kind, []).extend(values)
        cells = [
            f"{_ms(merged.get(kind, []), 0.5):.1f} / {_ms(merged.get(kind, []), 0.95):.1f}"
            for kind in ("reads", "searches", "writes")
        ]
        counted: dict[str, int] = {}
        for run in runs:
            for name_, count in run.errors.items():
                counted[name_] = counted.get(name_, 0) + count
        errors = ", ".join(f"{n}: {c}" for n, c in sorted(counted.items())) or "0"
        print(
            f"| {name} | {rate[name]:,.0f} | {rate[name] / rate['neither']:.2f} | "
            + " | ".join(cells)
            + f" | {errors} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
