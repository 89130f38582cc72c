"""A real server for the contract tests: `crm-api serve` in a subprocess on a free loopback port,
on the test database, with a workspace of its own."""

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from crm_api.contacts.models import Contact
from crm_api.core.db import transaction
from crm_api.settings import Settings
from crm_api.webhooks.models import WebhookDelivery


@dataclass(frozen=True)
class LiveServer:
    url: str
    key: str
    log_path: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _drop_waiting_deliveries(database_url: str) -> None:
    """Schemathesis creates webhook endpoints with whatever URLs it generates; no worker may
    ever post to them (later tests run workers on this database), so what waits is dropped."""

    async def drop() -> None:
        async with transaction(database_url, Settings(database_url=None)) as session:
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.status.in_(("pending", "delivering")))
                .values(status="failed", next_attempt_at=None, last_error="contract tests")
            )

    asyncio.run(drop())


# The contact the spec's ticket examples name, so an example ticket can be opened.
EXAMPLE_CONTACT_ID = uuid.UUID("0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10")


def _give_the_example_contact_a_record(database_url: str, live: LiveServer) -> None:
    """Ids are the server's to choose, so a new contact is moved to the example's id."""
    body = {"first_name": "Example", "last_name": "Contact"}
    response = httpx.post(f"{live.url}/v1/contacts", json=body, headers=live.headers)
    response.raise_for_status()

    async def move() -> None:
        async with transaction(database_url, Settings(database_url=None)) as session:
            await session.execute(
                update(Contact)
                .where(Contact.id == uuid.UUID(response.json()["id"]))
                .values(id=EXAMPLE_CONTACT_ID)
            )

    asyncio.run(move())


@pytest.fixture(scope="package")
def live_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    # Schemathesis sends thousands of requests with one key.
    env = {**os.environ, "CRM_DATABASE_URL": database_url, "CRM_RATE_LIMIT_REQUESTS": "0"}
    cli = [sys.executable, "-m", "crm_api"]
    created = subprocess.run(
        [*cli, "workspace", "create", "Contract tests", "--country", "US"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    port = _free_port()
    # The server's log goes to a file: a pipe nobody reads would block it once full.
    log_path = tmp_path_factory.mktemp("live-server") / "server.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {log_path.read_text()}")
            time.sleep(0.2)
        live = LiveServer(url, key, log_path)
        # A default pipeline, so deals sent without a stage have somewhere to go.
        pipeline = {"name": "Sales", "stages": [{"name": "Lead", "probability": 10}]}
        httpx.post(f"{url}/v1/pipelines", json=pipeline, headers=live.headers).raise_for_status()
        _give_the_example_contact_a_record(database_url, live)
        yield live
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        _drop_waiting_deliveries(database_url)
