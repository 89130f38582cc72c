"""Webhook delivery throughput and commit-to-delivery delay with 1, 2 and 4 `crm-api worker`
processes, against a receiver on loopback.

    .venv/bin/python bench/webhook_delivery.py --database-url postgresql://…/crm_bench \
        [--events 5000] [--paced-rate 50] [--workers 1 2 4] [--in-flight 1]

For each worker count, in a workspace of its own with one endpoint subscribed to `contact.*`:
  backlog: --events contacts created (in transactions of 50) before the workers start; the
           workers drain them: deliveries/s from their start to the last arrival;
  paced:   one contact per transaction at --paced-rate per second while the workers run: the
           delay a receiver sees when the workers keep up.
The delay is arrival at the receiver minus the event's timestamp (taken under the commit's
counter lock, just before COMMIT), on one machine's clock. Nothing leaves loopback."""

import argparse
import asyncio
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from crm_api.contacts.schemas import ContactCreate
from crm_api.contacts.service import create_contact
from crm_api.core.auth import Principal
from crm_api.core.db import create_engine, create_sessionmaker
from crm_api.core.embedded import to_asyncpg_url
from crm_api.migrate import upgrade_to_head
from crm_api.settings import Settings
from crm_api.webhooks.listen import read_body
from crm_api.webhooks.models import Event
from crm_api.webhooks.schemas import WebhookEndpointCreate
from crm_api.webhooks.service import create_endpoint, delete_endpoint, send_test_event
from crm_api.workspaces.service import create_workspace


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _receive(port: int, log_path: str) -> None:
    """The receiver process: answers 204 and logs `webhook-id arrival-time` per request."""
    import uvicorn

    log = Path(log_path).open("a", buffering=1)  # noqa: SIM115  (open while the process lives)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        arrived = time.time()
        message_id = dict(scope["headers"]).get(b"webhook-id", b"-").decode()
        log.write(f"{message_id} {arrived}\n")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


def _arrivals(log_path: Path) -> dict[str, float]:
    first: dict[str, float] = {}
    for line in log_path.read_text().splitlines():
        message_id, at = line.split()
        first.setdefault(message_id, float(at))
    return first


async def _arrived(log_path: Path, message_ids: list[str], within: float = 600) -> None:
    """Wait until every message has reached the receiver (or give up after `within` s)."""
    deadline = time.time() + within
    while time.time() < deadline:
        arrived = _arrivals(log_path)
        if all(m in arrived for m in message_ids):
            return
        await asyncio.sleep(0.05)


async def _produce(
    sessionmaker: Any, principal: Principal, count: int, per_transaction: int, rate: float | None
) -> None:
    started = time.perf_counter()
    made = 0
    while made < count:
        async with sessionmaker.begin() as session:
            for _ in range(min(per_transaction, count - made)):
                await create_contact(session, principal, ContactCreate(first_name=f"B{made}"))
                made += 1
        if rate is not None:
            ahead = made / rate - (time.perf_counter() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)


async def _events_of(sessionmaker: Any, workspace_id: Any) -> dict[str, datetime]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Event.id, Event.occurred_at).where(
                Event.workspace_id == workspace_id, Event.type == "contact.created"
            )
        )
        return {str(event_id): at for event_id, at in rows}


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def _scenario(
    args: argparse.Namespace,
    workers: int,
    phase: str,
    sessionmaker: Any,
    receiver_url: str,
    log_path: Path,
) -> str:
    async with sessionmaker.begin() as session:
        workspace, key, _ = await create_workspace(session, f"bench {phase} {workers}")
        principal = Principal(workspace.id, key.id, frozenset({"admin"}))
        endpoint = await create_endpoint(
            session,
            principal,
            WebhookEndpointCreate(url=receiver_url, event_types=["contact.*"]),
        )
    env = {
        **os.environ,
        "CRM_DATABASE_URL": args.database_url,
        "CRM_WEBHOOKS_ALLOW_INSECURE": "true",
        "CRM_WORKER_BATCH_SIZE": str(args.batch_size),
        "CRM_WEBHOOK_IN_FLIGHT_PER_ENDPOINT": str(args.in_flight),
    }
    count = args.events if phase == "backlog" else args.paced_events
    if phase == "backlog":
        await _produce(sessionmaker, principal, count, 50, None)
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "crm_api",
            "worker",
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    started = time.time()
    try:
        if phase == "paced":
            # The workers are up once a test event got through.
            async with sessionmaker.begin() as session:
                test_id = str(await send_test_event(session, principal, endpoint.id))
            await _arrived(log_path, [test_id])
            await _produce(sessionmaker, principal, count, 1, args.paced_rate)
        events = await _events_of(sessionmaker, workspace.id)
        await _arrived(log_path, list(events))
        arrived = _arrivals(log_path)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            await process.wait()
        async with sessionmaker.begin() as session:  # nothing left for later runs to retry
            await delete_endpoint(session, principal, endpoint.id, None)
    delays = [(arrived[e] - at.timestamp()) * 1000 for e, at in events.items() if e in arrived]
    first = started if phase == "backlog" else min(at.timestamp() for at in events.values())
    last_arrival = max(arrived[e] for e in events if e in arrived)
    rate = len(delays) / (last_arrival - first)
    missing = len(events) - len(delays)
    if phase == "backlog":  # the delays are time spent queued before the workers started
        return f"| {phase} | {workers} | {len(events)} | {rate:.0f} | - | - | - | {missing} |"
    return (
        f"| {phase:<7} | {workers:>7} | {len(events):>6} | {rate:>11.0f} |"
        f" {statistics.median(delays):>7.1f} | {_percentile(delays, 99):>7.1f} |"
        f" {max(delays):>7.1f} | {missing} |"
    )


async def main(args: argparse.Namespace) -> None:
    args.database_url = to_asyncpg_url(args.database_url)
    os.environ["CRM_WEBHOOKS_ALLOW_INSECURE"] = "true"  # the receiver is on loopback
    await asyncio.to_thread(upgrade_to_head, args.database_url)
    settings = Settings(database_url=args.database_url)
    engine = create_engine(args.database_url, settings)
    sessionmaker = create_sessionmaker(engine)
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        log_path = Path(folder) / "arrivals.log"
        log_path.touch()
        receiver = multiprocessing.get_context("spawn").Process(
            target=_receive, args=(port, str(log_path)), daemon=True
        )
        receiver.start()
        await asyncio.sleep(1)
        print("| phase | workers | events | delivered/s | p50 ms | p99 ms | max ms | missing |")
        print("|---|---|---|---|---|---|---|---|")
        try:
            for phase in ("backlog", "paced"):
                for workers in args.workers:
                    row = await _scenario(
                        args, workers, phase, sessionmaker, f"http://127.0.0.1:{port}/", log_path
                    )
                    print(row, flush=True)
        finally:
            receiver.terminate()
            await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--paced-events", type=int, default=1000)
    parser.add_argument("--paced-rate", type=float, default=50)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--in-flight", type=int, default=1, help="Requests per endpoint at once.")
    asyncio.run(main(parser.parse_args()))
