"""Behaviour every route shares: health, problem+json for framework errors, body limits."""

import json
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import create_async_engine

from crm_api.app import V1_ROUTERS
from crm_api.core.db import create_sessionmaker
from crm_api.core.middleware import RequestSizeLimit
from tests.builders import Tenant, assert_problem


async def test_healthz_answers_without_auth(client: AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_the_database_reachable(client: AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200


async def test_unknown_route_is_a_problem(client: AsyncClient) -> None:
    body = assert_problem(await client.get("/v1/nothing-here"), 404)
    assert body["instance"] == "/v1/nothing-here"


async def test_wrong_method_is_a_problem_with_allow(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.put("/v1/contacts", headers=tenant.headers)
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]
    assert "POST" in response.headers["allow"]


async def test_body_over_one_mebibyte_is_413(client: AsyncClient, tenant: Tenant) -> None:
    big = b'{"first_name": "' + b"x" * (1024 * 1024) + b'"}'
    response = await client.post(
        "/v1/contacts", content=big, headers={**tenant.headers, "content-type": "application/json"}
    )
    assert_problem(response, 413)


async def test_chunked_body_over_the_limit_is_413(client: AsyncClient, tenant: Tenant) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 65536

    response = await client.post(
        "/v1/contacts",
        content=chunks(),
        headers={**tenant.headers, "content-type": "application/json"},
    )
    assert_problem(response, 413)


async def test_malformed_json_is_422_with_location(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/contacts",
        content=b'{"first_name": ',
        headers={**tenant.headers, "content-type": "application/json"},
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["type"] == "json_invalid"


async def test_interactive_docs_load_and_list_every_operation(client: AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200
        assert "/openapi.json" in response.text  # both render the document below
    served = (await client.get("/openapi.json")).json()
    operations = {
        (method.upper(), path) for path, item in served["paths"].items() for method in item
    }
    routes = {
        (method, route.path)
        for route in client._transport.app.routes  # type: ignore[attr-defined]
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    routes |= {
        (method, "/v1" + route.path)
        for router in V1_ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    assert operations == routes


async def test_the_database_down_is_503_with_retry_after(app: FastAPI, tenant: Tenant) -> None:
    """Readiness and every request that needs the database; tests/faults has the outage itself."""
    unreachable = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    app.state.engine = unreachable
    app.state.sessionmaker = create_sessionmaker(unreachable)
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
            assert_problem(await client.get("/readyz"), 503)
            listed = await client.get("/v1/contacts", headers=tenant.headers)
            created = await client.post(
                "/v1/contacts", json={"first_name": "Ada"}, headers=tenant.headers
            )
    finally:
        await unreachable.dispose()
    for answer in (listed, created):
        assert assert_problem(answer, 503)["type"].endswith("/unavailable")
        assert answer.headers["retry-after"] == "2"


async def test_headers_over_the_limit_are_431(client: AsyncClient, tenant: Tenant) -> None:
    near = {**tenant.headers, "X-Padding": "x" * (15 * 1024)}
    assert (await client.get("/v1/contacts", headers=near)).status_code == 200
    over = {**tenant.headers, "X-Padding": "x" * (17 * 1024)}
    body = assert_problem(await client.get("/v1/contacts", headers=over), 431)
    assert "16384 bytes" in body["detail"]


async def test_malformed_content_length_is_400() -> None:
    """httpx will not send a bad Content-Length, so the middleware is called as ASGI."""
    sent: list[dict[str, Any]] = []

    async def never_called(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the request should not reach the app")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/v1/contacts", "headers": [(b"content-length", b"12x")]}
    await RequestSizeLimit(never_called, max_bytes=1024)(scope, receive, send)
    assert sent[0]["status"] == 400
    assert (b"content-type", b"application/problem+json") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["status"] == 400


async def test_a_concrete_path_is_not_taken_for_a_parameter(
    client: AsyncClient, tenant: Tenant
) -> None:
    """/v1/deals/forecast is not the deal with id `forecast`: other methods there are 405."""
    response = await client.patch("/v1/deals/forecast", json={}, headers=tenant.headers)
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD"
    assert (await client.get("/v1/deals/forecast", headers=tenant.headers)).status_code == 200
    assert_problem(await client.get("/v1/deals/not-an-id", headers=tenant.headers), 422)
