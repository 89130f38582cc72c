"""`crm-api worker` as real processes: killed with SIGKILL mid-batch and restarted, nothing is
lost; two of them on one queue, nothing is sent twice."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_api.webhooks.models import WebhookDelivery
from tests.builders import Tenant
from tests.webhooks.conftest import create_contacts, eventually
from tests.webhooks.receiver import Received, Receiver, answering_after


@pytest.fixture
def workers(database_url: str) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def start_worker(
    started: list[subprocess.Popen[str]], database_url: str, **settings: Any
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "CRM_DATABASE_URL": database_url,
        "CRM_WEBHOOKS_ALLOW_INSECURE": "true",
        "CRM_WEBHOOK_TIMEOUT_SECONDS": "1",
        "CRM_WORKER_LEASE_SECONDS": "6",
        "CRM_WORKER_POLL_SECONDS": "0.1",
        "CRM_WEBHOOK_RETRY_DELAYS": json.dumps([0.2] * 9),
        **{f"CRM_{k.upper()}": str(v) for k, v in settings.items()},
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "crm_api", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    started.append(process)
    return process


async def deliveries_by_status(engine: AsyncEngine, endpoint_id: str) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(WebhookDelivery.status, func.count())
            .where(WebhookDelivery.endpoint_id == uuid.UUID(endpoint_id))
            .group_by(WebhookDelivery.status)
        )
        return {status: count for status, count in rows}


def created_ids(received: list[Received]) -> list[str]:
    return [r.headers["webhook-id"] for r in received if r.payload["type"] == "contact.created"]


async def test_a_worker_killed_mid_batch_loses_nothing(
    database_url: str,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
    workers: list[subprocess.Popen[str]],
) -> None:
    # A batch of 20 takes about 0.4 s: long enough to be caught in it.
    receiver.responder = answering_after(0.02)
    await create_contacts(live_client, live_tenant, 200, "K")
    first = start_worker(workers, database_url, worker_batch_size=20)
    await receiver.wait_for(lambda got: len(got) >= 60)

    async def holding_a_batch() -> bool:
        statuses = await deliveries_by_status(engine, live_endpoint["id"])
        return statuses.get("delivering", 0) > 0

    await eventually(holding_a_batch)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    at_kill = await deliveries_by_status(engine, live_endpoint["id"])
    assert at_kill.get("delivering", 0) > 0  # it died holding a batch
    assert len(set(created_ids(receiver.received))) < 200

    start_worker(workers, database_url, worker_batch_size=20)
    await receiver.wait_for(lambda got: len(set(created_ids(got))) >= 200, within=60)
    event_ids = await live_client.get(
        "/v1/events",
        params={"type": "contact.created", "limit": 500},
        headers=live_tenant.headers,
    )
    assert {e["id"] for e in event_ids.json()["data"]} <= set(created_ids(receiver.received))

    async def settled() -> bool:
        return set(await deliveries_by_status(engine, live_endpoint["id"])) == {"succeeded"}

    await eventually(settled)
    # 200 contacts and the endpoint's own creation, each delivered.
    assert await deliveries_by_status(engine, live_endpoint["id"]) == {"succeeded": 201}


async def test_two_worker_processes_never_send_an_event_twice(
    database_url: str,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
    workers: list[subprocess.Popen[str]],
) -> None:
    await create_contacts(live_client, live_tenant, 300, "W")
    for _ in range(2):
        start_worker(workers, database_url, worker_batch_size=10)
    await receiver.wait_for(lambda got: len(created_ids(got)) >= 300, within=60)
    await asyncio.sleep(1)  # a duplicate would arrive meanwhile
    ids = created_ids(receiver.received)
    assert len(ids) == 300
    assert len(set(ids)) == 300
