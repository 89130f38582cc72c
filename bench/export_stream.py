"""Stream exports of a large workspace through the app and watch this process's memory.

    .venv/bin/python bench/export_stream.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/crm_bench --api-key crm_…

Calls GET /v1/exports/<resource> in-process (the app on an httpx ASGI transport, so nothing
but the export runs), reads the body as it streams, and prints rows/s, MiB/s and the peak
resident memory after each export: flat memory means the rows are never all held at once."""

import argparse
import asyncio
import resource
import time

import httpx

from crm_api.app import create_app
from crm_api.core.embedded import to_asyncpg_url
from crm_api.settings import Settings


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--exports", default="contacts:csv,contacts:parquet,orders:csv")
    arguments = parser.parse_args()
    app = create_app(Settings(), database_url=to_asyncpg_url(arguments.database_url))
    headers = {"Authorization": f"Bearer {arguments.api_key}"}
    rows = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for spec in arguments.exports.split(","):
                resource_name, export_format = spec.split(":")
                url = f"/v1/exports/{resource_name}?format={export_format}"
                started, size, lines = time.perf_counter(), 0, 0
                async with client.stream("GET", url, headers=headers, timeout=None) as response:
                    response.raise_for_status()
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        lines += chunk.count(b"\n")
                seconds = time.perf_counter() - started
                rows.append((spec, seconds, size, lines, peak_rss_mib()))
                print(f"{spec}: {seconds:.1f} s, {size / 2**20:,.0f} MiB", flush=True)
    print()
    print("| export | seconds | MiB | rows/s (CSV lines) | MiB/s | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for spec, seconds, size, lines, peak in rows:
        rate = f"{(lines - 1) / seconds:,.0f}" if spec.endswith("csv") else "n/a"
        print(
            f"| {spec} | {seconds:,.1f} | {size / 2**20:,.0f} | {rate} | "
            f"{size / 2**20 / seconds:,.1f} | {peak:,.0f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
