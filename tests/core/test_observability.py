"""What operators see: a request id on every answer and in every log record of the request,
one JSON access-log line per request, and GET /metrics in Prometheus' format."""

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crm_api.core.logs import log_formatter
from crm_api.core.middleware import RequestContext
from tests.builders import Tenant, assert_problem, create_contact

UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the crm_api loggers write, formatted as in production (JSON lines)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter("json"))
    logger = logging.getLogger("crm_api")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def records(stream: io.StringIO, logger: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == logger]


async def test_every_answer_has_a_request_id(client: AsyncClient, tenant: Tenant) -> None:
    answers = [
        await client.get("/v1/contacts", headers=tenant.headers),
        await client.get("/v1/contacts"),  # 401
        await client.get("/v1/nothing-here"),  # 404 of no route
        await client.post("/v1/contacts", json={"emails": "x"}, headers=tenant.headers),  # 422
        await client.post(
            "/v1/contacts", content=b"x" * (2 * 1024 * 1024), headers=tenant.headers
        ),  # 413
    ]
    assert [a.status_code for a in answers] == [200, 401, 404, 422, 413]
    ids = [a.headers["x-request-id"] for a in answers]
    assert all(UUID_TEXT.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("given", "kept"),
    [("req-42.a:b_c", True), ("x" * 128, True), ("x" * 129, False), ("two words", False),
     ("new\nline", False), ("", False)],
)  # fmt: skip
async def test_the_callers_request_id_is_kept_when_well_formed(
    client: AsyncClient, tenant: Tenant, given: str, kept: bool
) -> None:
    response = await client.get("/v1/contacts", headers={**tenant.headers, "X-Request-ID": given})
    assert response.status_code == 200
    returned = response.headers["x-request-id"]
    assert (returned == given) is kept
    if not kept:
        assert UUID_TEXT.fullmatch(returned)


async def test_the_access_log_is_one_json_line_per_request(
    client: AsyncClient, tenant: Tenant, log_lines: io.StringIO
) -> None:
    contact = await create_contact(client, tenant)
    response = await client.get(
        f"/v1/contacts/{contact['id']}", headers={**tenant.headers, "X-Request-ID": "trace-1"}
    )
    assert response.status_code == 200
    unauthenticated = await client.get("/v1/contacts")
    lines = records(log_lines, "crm_api.access")
    assert [line["operation"] for line in lines] == [
        "contacts_create", "contacts_get", "contacts_list",
    ]  # fmt: skip
    read = lines[1]
    assert read["request_id"] == "trace-1"
    assert (read["method"], read["path"], read["status"]) == (
        "GET", f"/v1/contacts/{contact['id']}", 200,
    )  # fmt: skip
    assert read["workspace_id"] == str(tenant.workspace_id)
    assert uuid.UUID(read["api_key_id"])
    assert read["duration_ms"] >= 0
    assert read["level"] == "info"
    assert lines[2]["request_id"] == unauthenticated.headers["x-request-id"]
    assert (lines[2]["status"], lines[2]["workspace_id"]) == (401, None)


async def test_an_unexpected_error_is_a_500_problem_with_the_request_id_logged(
    log_lines: io.StringIO,
) -> None:
    async def broken(request: Request) -> JSONResponse:
        logging.getLogger("crm_api.test").info("about to fail")
        raise RuntimeError("boom")

    # Where create_app puts it: inside Starlette's outermost error handler.
    app = Starlette(routes=[Route("/broken", broken)], middleware=[Middleware(RequestContext)])
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/broken", headers={"X-Request-ID": "failing-1"})
    body = assert_problem(response, 500)
    assert "boom" not in json.dumps(body)
    assert response.headers["x-request-id"] == "failing-1"
    (before,) = records(log_lines, "crm_api.test")
    (error,) = records(log_lines, "crm_api.core.errors")
    (access,) = records(log_lines, "crm_api.access")
    assert before["request_id"] == error["request_id"] == access["request_id"] == "failing-1"
    assert "RuntimeError: boom" in error["exception"]
    assert (access["status"], access["operation"]) == (500, "broken")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(client: AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_metrics_count_requests_by_operation_and_status(
    client: AsyncClient, tenant: Tenant
) -> None:
    labels = frozenset({("operation", "contacts_list"), ("method", "GET"), ("status", "200")})
    listed = ("crm_http_requests_total", labels)
    timed = ("crm_http_request_duration_seconds_count", frozenset({("operation", "contacts_list")}))
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/v1/contacts", headers=tenant.headers)).status_code == 200
    assert (await client.get("/v1/contacts")).status_code == 401
    after = await scrape(client)
    assert after[listed] - before.get(listed, 0) == 3
    assert after[timed] - before.get(timed, 0) == 4
    refused = (listed[0], (listed[1] - {("status", "200")}) | {("status", "401")})
    assert after[refused] - before.get(refused, 0) == 1
    assert after[("crm_db_pool_size", frozenset())] >= 1


async def test_metrics_show_the_webhook_outbox_waiting(client: AsyncClient, tenant: Tenant) -> None:
    due = ("crm_webhook_deliveries_due", frozenset())
    lag = ("crm_webhook_outbox_lag_seconds", frozenset())
    before = await scrape(client)
    endpoint = {"url": "https://hooks.example.com/crm", "event_types": ["contact.created"]}
    response = await client.post("/v1/webhook-endpoints", json=endpoint, headers=tenant.headers)
    assert response.status_code == 201, response.text
    await create_contact(client, tenant)
    await create_contact(client, tenant)
    after = await scrape(client)
    assert after[due] - before[due] == 2
    assert after[lag] >= 0
