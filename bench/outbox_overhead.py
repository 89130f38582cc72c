"""What announcing every change costs a write: contacts created through the service, one per
transaction and 1,000 per batch upsert, with the outbox's commit hook detached, attached with no
endpoint subscribed, and attached with one endpoint subscribed (a delivery row per event).

    .venv/bin/python bench/outbox_overhead.py --database-url postgresql://…/crm_bench

One process, sequential, so the figures are the cost on the write path itself."""

import argparse
import asyncio
import statistics
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from crm_api.contacts.schemas import ContactCreate, ContactUpsertItem
from crm_api.contacts.service import batch_upsert_contacts, create_contact
from crm_api.core.auth import Principal
from crm_api.core.db import create_engine, create_sessionmaker
from crm_api.core.embedded import to_asyncpg_url
from crm_api.migrate import upgrade_to_head
from crm_api.settings import Settings
from crm_api.webhooks import events
from crm_api.webhooks.schemas import WebhookEndpointCreate
from crm_api.webhooks.service import create_endpoint, delete_endpoint
from crm_api.workspaces.service import create_workspace


async def _workspace(sessionmaker: Any, name: str) -> Principal:
    async with sessionmaker.begin() as session:
        workspace, key, _ = await create_workspace(session, name)
        return Principal(workspace.id, key.id, frozenset({"admin"}))


async def _singles(sessionmaker: Any, principal: Principal, count: int) -> list[float]:
    timings = []
    for n in range(count):
        started = time.perf_counter()
        async with sessionmaker.begin() as session:
            await create_contact(session, principal, ContactCreate(first_name=f"S{n}"))
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def _batches(sessionmaker: Any, principal: Principal, batches: int) -> list[float]:
    timings = []
    for b in range(batches):
        items = [
            ContactUpsertItem(external_id=f"B{b}-{n}", first_name=f"B{n}") for n in range(1000)
        ]
        started = time.perf_counter()
        async with sessionmaker.begin() as session:
            await batch_upsert_contacts(session, principal, items)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def main(args: argparse.Namespace) -> None:
    url = to_asyncpg_url(args.database_url)
    await asyncio.to_thread(upgrade_to_head, url)
    settings = Settings(database_url=url, webhooks_allow_insecure=True)
    engine = create_engine(url, settings)
    sessionmaker = create_sessionmaker(engine)
    print("| outbox | single write p50 ms | p95 ms | writes/s | batch of 1,000 p50 ms |")
    print("|---|---|---|---|---|")
    for setup in ("detached", "no endpoint", "one endpoint"):
        principal = await _workspace(sessionmaker, f"overhead {setup}")
        endpoint = None
        if setup == "detached":
            event.remove(Session, "before_commit", events._publish_before_commit)
        if setup == "one endpoint":
            async with sessionmaker.begin() as session:
                endpoint = await create_endpoint(
                    session,
                    principal,
                    WebhookEndpointCreate(
                        url="https://hooks.example.com/", event_types=["contact.*"]
                    ),
                )
        await _singles(sessionmaker, principal, 50)  # warm-up
        started = time.perf_counter()
        singles = await _singles(sessionmaker, principal, args.writes)
        rate = args.writes / (time.perf_counter() - started)
        batches = await _batches(sessionmaker, principal, args.batches)
        if setup == "detached":
            event.listen(Session, "before_commit", events._publish_before_commit)
        if endpoint is not None:  # its deliveries are dropped: nothing is ever sent
            async with sessionmaker.begin() as session:
                await delete_endpoint(session, principal, endpoint.id, None)
        print(
            f"| {setup} | {statistics.median(singles):.2f} |"
            f" {sorted(singles)[int(0.95 * len(singles))]:.2f} | {rate:.0f} |"
            f" {statistics.median(batches):.0f} |",
            flush=True,
        )
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
