"""Stream exports of a large workspace from a running server and watch the server's memory.

    .venv/bin/python bench/export_stream.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/crm_bench --api-key crm_…

Starts `crm-api serve` on the database (one process), calls GET /v1/exports/<resource> for
each export, reads the body as it streams, and prints rows/s, MiB/s and the server's peak
resident memory (VmHWM) after each: flat memory means the rows are never all held at once."""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

PORT = 8031


def server_peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def wait_until_ready(url: str) -> None:
    for _ in range(100):
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--exports", default="contacts:csv,contacts:parquet,orders:csv")
    arguments = parser.parse_args()
    environment = {**os.environ, "CRM_DATABASE_URL": arguments.database_url}
    command = [sys.executable, "-m", "crm_api", "serve", "--port", str(PORT)]
    server = subprocess.Popen(command, env=environment)
    url = f"http://127.0.0.1:{PORT}"
    rows = []
    try:
        wait_until_ready(url)
        print(f"server started, peak memory {server_peak_mib(server.pid):,.0f} MiB", flush=True)
        headers = {"Authorization": f"Bearer {arguments.api_key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=None) as client:
            for spec in arguments.exports.split(","):
                resource_name, export_format = spec.split(":")
                path = f"/v1/exports/{resource_name}?format={export_format}"
                started, size, lines = time.perf_counter(), 0, 0
                with client.stream("GET", path) as response:
                    response.raise_for_status()
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        lines += chunk.count(b"\n")
                seconds = time.perf_counter() - started
                rows.append((spec, seconds, size, lines, server_peak_mib(server.pid)))
                print(f"{spec}: {seconds:.1f} s, {size / 2**20:,.0f} MiB", flush=True)
    finally:
        server.terminate()
        server.wait()
    print()
    print("| export | seconds | MiB | rows/s (CSV lines) | MiB/s | server peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for spec, seconds, size, lines, peak in rows:
        rate = f"{(lines - 1) / seconds:,.0f}" if spec.endswith("csv") else "n/a"
        print(
            f"| {spec} | {seconds:,.1f} | {size / 2**20:,.0f} | {rate} | "
            f"{size / 2**20 / seconds:,.1f} | {peak:,.0f} |"
        )


if __name__ == "__main__":
    main()
