import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_api.settings import Settings
from crm_api.webhooks.dispatcher import Dispatcher
from tests.builders import Tenant
from tests.webhooks.receiver import Receiver, start_receiver

# Seconds instead of hours, so retries and give-ups happen within a test.
FAST_RETRIES = [0.1] * 9


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver, stop = start_receiver()
    yield receiver
    stop()


def fast_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": None,
        "webhooks_allow_insecure": True,
        "webhook_timeout_seconds": 2,
        "webhook_retry_delays": FAST_RETRIES,
        "worker_poll_seconds": 0.05,
        "worker_lease_seconds": 10,
        **overrides,
    }
    return Settings(**values)


class LoopbackOnly(httpx.AsyncHTTPTransport):
    """The tests' receivers are on loopback; nothing else is ever contacted, whatever URLs
    other tests left in the queue."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in ("127.0.0.1", "localhost", "::1"):
            raise httpx.ConnectError(f"tests post to loopback only, not {request.url.host}")
        return await super().handle_async_request(request)


def make_dispatcher(live_app: FastAPI, engine: AsyncEngine, **overrides: Any) -> Dispatcher:
    client = httpx.AsyncClient(transport=LoopbackOnly(), follow_redirects=False)
    return Dispatcher(engine, live_app.state.sessionmaker, fast_settings(**overrides), client)


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 20) -> None:
    """Wait until the condition holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(*dispatchers: Dispatcher) -> AsyncIterator[None]:
    """The dispatchers' loops, as `crm-api worker` runs them, until the block ends."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(d.run(stop)) for d in dispatchers]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for dispatcher in dispatchers:
            if dispatcher.client is not None:
                await dispatcher.client.aclose()


async def create_contacts(client: AsyncClient, tenant: Tenant, count: int, prefix: str) -> None:
    """`count` contacts in one batch upsert: `count` events in one commit."""
    items = [{"external_id": f"{prefix}-{n}", "first_name": f"{prefix}{n}"} for n in range(count)]
    response = await client.post(
        "/v1/contacts/batch/upsert", json={"items": items}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text


async def create_endpoint(
    client: AsyncClient, tenant: Tenant, url: str, **fields: Any
) -> dict[str, Any]:
    body = {"url": url, "event_types": ["*"], **fields}
    response = await client.post("/v1/webhook-endpoints", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
async def live_endpoint(
    live_client: AsyncClient, live_tenant: Tenant, receiver: Receiver
) -> AsyncIterator[dict[str, Any]]:
    """An endpoint of the live workspace pointing at the receiver; deleted afterwards, so no
    later test's worker keeps trying a receiver that has stopped."""
    endpoint = await create_endpoint(live_client, live_tenant, receiver.url)
    yield endpoint
    await live_client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=live_tenant.headers)
