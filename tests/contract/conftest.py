"""A real server for the contract tests (tests/serving.py) on the test database."""

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from crm_api.contacts.models import Contact
from crm_api.core.db import transaction
from crm_api.settings import Settings
from crm_api.webhooks.models import WebhookDelivery
from tests.serving import LiveServer, served

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


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


def _close_deals(live: LiveServer) -> None:
    """Five won and five lost deals, each with a contact of its own."""
    stages = [{"name": "Won", "kind": "won"}, {"name": "Lost", "kind": "lost"}]
    pipeline = httpx.post(
        f"{live.url}/v1/pipelines", json={"name": "History", "stages": stages},
        headers=live.headers,
    ).raise_for_status().json()  # fmt: skip
    for index in range(10):
        contact = httpx.post(
            f"{live.url}/v1/contacts", json={"first_name": f"Closed {index}"}, headers=live.headers
        ).raise_for_status().json()  # fmt: skip
        deal = {"name": f"Deal {index}", "stage_id": pipeline["stages"][index % 2]["id"],
                "contact_ids": [contact["id"]]}  # fmt: skip
        httpx.post(f"{live.url}/v1/deals", json=deal, headers=live.headers).raise_for_status()


@pytest.fixture(scope="package")
def live_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    log_path = tmp_path_factory.mktemp("live-server") / "server.log"
    try:
        # Schemathesis sends thousands of requests with one key.
        with served(database_url, log_path, rate_limit_requests="0") as live:
            # A default pipeline, so deals sent without a stage have somewhere to go.
            pipeline = {"name": "Sales", "stages": [{"name": "Lead", "probability": 10}]}
            httpx.post(
                f"{live.url}/v1/pipelines", json=pipeline, headers=live.headers
            ).raise_for_status()
            # A loyalty program, lead scoring and playbooks, which their GETs need to answer
            # 200, and won and lost deals for a model to be trained on.
            schemas = json.loads(SPEC.read_text())["components"]["schemas"]
            for path, name in (
                ("loyalty/program", "LoyaltyProgramInput"),
                ("lead-scoring", "LeadScoringInput"),
                ("playbooks", "PlaybooksInput"),
            ):
                httpx.put(
                    f"{live.url}/v1/{path}", json=schemas[name]["examples"][0],
                    headers=live.headers,
                ).raise_for_status()  # fmt: skip
            _close_deals(live)
            _give_the_example_contact_a_record(database_url, live)
            yield live
    finally:
        _drop_waiting_deliveries(database_url)
