"""Load contacts through the batch upsert endpoint, then measure reads under a bounded load.

    .venv/bin/python bench/contacts_load.py --base-url http://127.0.0.1:8000 --api-key crm_… \
        --contacts 1000000 [--database-url postgresql://…]  # the URL adds EXPLAIN plans

Prints tables: load throughput, then requests/s and latency percentiles per read scenario.
Runs against a server you started; it sends traffic only to --base-url."""

import argparse
import asyncio
import hashlib
import json
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from crm_api.demo import FIRST_NAMES, LAST_NAMES

STAGES = ["subscriber", "lead", "qualified", "customer", "churned"]
TAGS = ["newsletter", "vip", "webinar", "trade-show", "referral", "partner", "beta"]
QUERIES = [
    "nguyen",
    "dang thao",
    "muller",
    "smith",
    "garcia maria",
    "zoe",
    "lukasz kowal",
    "example.org",
    "415555",
    "hoang huong",
    "bjork ingrid",
    "tanaka yuki",
]


def contact(n: int) -> dict[str, object]:
    rng = random.Random(n)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {
        "external_id": f"BENCH-{n:08d}",
        "first_name": first,
        "last_name": last,
        "email": f"user{n}@example.org",
        "phone": f"+1415{n % 10_000_000:07d}",
        "lifecycle_stage": rng.choice(STAGES),
        "tags": rng.sample(TAGS, rng.randint(0, 2)),
        "source": rng.choice(["web", "import", "event"]),
    }


@dataclass
class Timings:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    def row(self, name: str, concurrency: int) -> str:
        ms = sorted(1000 * x for x in self.latencies)

        def pct(p: float) -> float:
            return ms[min(len(ms) - 1, int(p / 100 * len(ms)))] if ms else float("nan")

        rate = len(ms) / self.elapsed if self.elapsed else 0.0
        return (
            f"| {name:<28} | {len(ms):>6} | {concurrency:>3} | {rate:>8.1f} | {pct(50):>7.1f} |"
            f" {pct(95):>7.1f} | {pct(99):>7.1f} | {self.errors:>4} |"
        )


async def run_load(
    client: httpx.AsyncClient, total: int, batch: int, concurrency: int, start: int
) -> list[str]:
    """Upsert contacts start..start+total in batches; returns a sample of created ids."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for offset in range(start, start + total, batch):
        queue.put_nowait(offset)
    ids: list[str] = []
    done = 0
    began = time.perf_counter()
    batch_times: list[float] = []

    async def worker() -> None:
        nonlocal done
        while not queue.empty():
            offset = queue.get_nowait()
            items = [contact(n) for n in range(offset, min(offset + batch, start + total))]
            t0 = time.perf_counter()
            response = await client.post("/v1/contacts/batch/upsert", json={"items": items})
            batch_times.append(time.perf_counter() - t0)
            response.raise_for_status()
            results = response.json()["results"]
            errors = [r for r in results if r["status"] == "error"]
            if errors:
                raise SystemExit(f"batch at {offset}: {errors[0]}")
            if len(ids) < 20_000:
                ids.extend(r["id"] for r in results[:: max(1, batch // 50)])
            done += len(items)
            if done % (batch * 50) == 0:
                rate = done / (time.perf_counter() - began)
                print(f"  loaded {done:>9,} contacts, {rate:,.0f}/s", flush=True)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    print()
    print(
        "| load | contacts | batch | concurrency | seconds | contacts/s"
        " | batch p50 ms | batch p95 ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    ms = sorted(1000 * t for t in batch_times)
    print(
        f"| batch upsert | {total:,} | {batch} | {concurrency} | {elapsed:.0f}"
        f" | {total / elapsed:,.0f} |"
        f" {statistics.median(ms):.0f} | {ms[int(0.95 * len(ms))]:.0f} |"
    )
    return ids


async def measure(
    requests: int, concurrency: int, call: Callable[[int], Awaitable[httpx.Response]]
) -> Timings:
    timings = Timings()
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            response = await call(i)
            timings.latencies.append(time.perf_counter() - t0)
            if response.status_code != 200:
                timings.errors += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    timings.elapsed = time.perf_counter() - began
    return timings


WRK_SCRIPT = """
local paths = {%(paths)s}
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1], {["Authorization"] = "Bearer %(key)s"})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%f %%f %%f %%f %%d\\n", summary.requests,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, e.status + e.timeout + e.connect + e.read + e.write))
end
"""


async def read_paths(
    client: httpx.AsyncClient, ids: list[str], population: int
) -> dict[str, list[str]]:
    """Per scenario, the request paths (with query strings) to cycle through."""
    rng = random.Random(7)
    deep_cursors: list[str] = []
    cursor = None
    for _ in range(40):  # cursors from deep in the table, for "later page" requests
        params = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        cursor = (await client.get("/v1/contacts", params=params)).json()["next_cursor"]
        deep_cursors.append(cursor)

    def url(params: dict[str, object]) -> str:
        return str(httpx.URL("/v1/contacts", params=params))

    n = 2000
    return {
        "GET /contacts/{id}": [f"/v1/contacts/{rng.choice(ids)}" for _ in range(n)],
        "list first page (50)": [url({"limit": 50})],
        "list later page (50, cursor)": [
            url({"limit": 50, "cursor": rng.choice(deep_cursors)}) for _ in range(n)
        ],
        "list filtered (stage+tag)": [
            url({"limit": 50, "lifecycle_stage": rng.choice(STAGES), "tag": rng.choice(TAGS)})
            for _ in range(n)
        ],
        "list by email": [
            url({"email": f"user{rng.randrange(population)}@example.org"}) for _ in range(n)
        ],
        "q search (50)": [url({"limit": 50, "q": rng.choice(QUERIES)}) for _ in range(n)],
    }


def run_reads_wrk(
    base_url: str, api_key: str, paths: dict[str, list[str]], seconds: int, concurrency: int
) -> None:
    """The same scenarios driven by wrk, whose own CPU use is small next to the server's."""
    print()
    print(f"wrk: {concurrency} connections, {seconds} s per scenario")
    print("| scenario | requests | conc | req/s | p50 ms | p95 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, scenario_paths in paths.items():
            script = Path(folder) / "scenario.lua"
            listed = ", ".join(json.dumps(p) for p in scenario_paths)
            script.write_text(WRK_SCRIPT % {"paths": listed, "key": api_key})

            def wrk(duration: int, script: Path = script) -> str:
                command = ["wrk", "-t2", f"-c{concurrency}", f"-d{duration}s", "-s", str(script)]
                done = subprocess.run(
                    [*command, base_url], capture_output=True, text=True, check=True
                )
                return done.stdout

            wrk(3)  # warm-up
            output = wrk(seconds)
            line = next(x for x in output.splitlines() if x.startswith("RESULT"))
            count, elapsed, p50, p95, p99, errors = line.split()[1:]
            print(
                f"| {name:<28} | {int(count):>6} | {concurrency:>3} |"
                f" {int(count) / float(elapsed):>8.1f} | {float(p50):>7.1f} | {float(p95):>7.1f} |"
                f" {float(p99):>7.1f} | {int(errors):>4} |",
                flush=True,
            )


async def run_reads(
    client: httpx.AsyncClient, paths: dict[str, list[str]], requests: int, concurrency: int
) -> None:
    """The scenarios driven from this process (httpx): the client's own CPU use counts."""
    print()
    print(f"httpx: {concurrency} concurrent requests, {requests} per scenario")
    print("| scenario | requests | conc | req/s | p50 ms | p95 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for name, scenario_paths in paths.items():

        def call(i: int, scenario_paths: list[str] = scenario_paths) -> Awaitable[httpx.Response]:
            return client.get(scenario_paths[i % len(scenario_paths)])

        await measure(min(200, requests), concurrency, call)  # warm-up
        timings = await measure(requests, concurrency, call)
        print(timings.row(name, concurrency), flush=True)


async def explain(database_url: str, api_key: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(
        database_url.replace("postgresql+asyncpg://", "postgresql://")
    )
    try:
        workspace_id = await connection.fetchval(
            "SELECT workspace_id FROM api_keys WHERE key_hash = $1",
            hashlib.sha256(api_key.encode()).hexdigest(),
        )
        statements = {
            "filtered list page (lifecycle_stage = 'lead', first 50 by created_at)": """
                SELECT id FROM contacts WHERE workspace_id = $1 AND deleted_at IS NULL
                  AND lifecycle_stage = 'lead' ORDER BY created_at, id LIMIT 51""",
            "q search 'dang thao' (first 50; common words: the ordered walk stops early)": """
                SELECT id FROM contacts WHERE workspace_id = $1 AND deleted_at IS NULL
                  AND search_text LIKE '%' || crm_fold('dang') || '%'
                  AND search_text LIKE '%' || crm_fold('thao') || '%'
                ORDER BY created_at, id LIMIT 51""",
            "q search 'user123456@' (first 50; a rare fragment: the trigram GIN index)": """
                SELECT id FROM contacts WHERE workspace_id = $1 AND deleted_at IS NULL
                  AND search_text LIKE '%' || crm_fold('user123456@') || '%'
                ORDER BY created_at, id LIMIT 51""",
            "list by email (any of a contact's addresses)": """
                SELECT id FROM contacts WHERE workspace_id = $1 AND deleted_at IS NULL
                  AND id IN (SELECT contact_id FROM contact_emails
                             WHERE workspace_id = $1 AND email = 'user424242@example.org')
                ORDER BY created_at, id LIMIT 51""",
        }
        for title, sql in statements.items():
            plan = await connection.fetch(
                f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", workspace_id
            )
            print(f"\nEXPLAIN {title}:")
            for row in plan:
                print("    " + row[0])
    finally:
        await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--start", type=int, default=0, help="first contact number (to resume)")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--load-concurrency", type=int, default=4)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument(
        "--driver",
        choices=["wrk", "httpx"],
        default="wrk" if shutil.which("wrk") else "httpx",
        help="load generator for the reads (wrk when installed: apt-get install wrk)",
    )
    parser.add_argument("--seconds", type=int, default=20, help="per scenario, with wrk")
    parser.add_argument("--database-url", help="adds EXPLAIN (ANALYZE) of the main queries")
    parser.add_argument("--explain-only", action="store_true", help="only the plans")
    args = parser.parse_args()

    if args.explain_only:
        if not args.database_url:
            parser.error("--explain-only needs --database-url")
        await explain(args.database_url, args.api_key)
        return
    headers = {"Authorization": f"Bearer {args.api_key}"}
    limits = httpx.Limits(max_connections=max(args.concurrency, args.load_concurrency))
    async with httpx.AsyncClient(
        base_url=args.base_url, headers=headers, timeout=120, limits=limits
    ) as client:
        if args.skip_load:
            page = (await client.get("/v1/contacts", params={"limit": 500})).json()["data"]
            ids = [c["id"] for c in page]
        else:
            ids = await run_load(
                client, args.contacts, args.batch, args.load_concurrency, args.start
            )
        paths = await read_paths(client, ids, args.start + args.contacts)
        if args.driver == "wrk":
            run_reads_wrk(args.base_url, args.api_key, paths, args.seconds, args.concurrency)
        else:
            await run_reads(client, paths, args.requests, args.concurrency)
    if args.database_url:
        await explain(args.database_url, args.api_key)


if __name__ == "__main__":
    asyncio.run(main())
