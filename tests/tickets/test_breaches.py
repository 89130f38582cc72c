"""SLA breaches the worker finds on tickets nobody touches, announced once however many workers
look; and writes racing on one ticket. On real connections (the live app commits)."""

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_api.core.periodic import Scheduler
from crm_api.tasks import periodic_tasks
from crm_api.tickets.models import Ticket
from crm_api.tickets.service import announce_due_breaches
from tests.builders import Tenant, create_contact, create_sla_policy, create_ticket, create_user
from tests.webhooks.conftest import eventually, fast_settings, make_dispatcher, running


async def run_out(live_app: FastAPI, ticket_ids: list[str], **due: datetime) -> None:
    """Move the tickets' due times (as if time had passed)."""
    async with live_app.state.sessionmaker.begin() as session:
        await session.execute(
            update(Ticket).where(Ticket.id.in_([uuid.UUID(t) for t in ticket_ids])).values(**due)
        )


async def breaches(client: AsyncClient, tenant: Tenant) -> Counter[tuple[str, str]]:
    """(ticket id, target) of every ticket.sla_breached in the workspace's feed."""
    response = await client.get(
        "/v1/events?type=ticket.sla_breached&limit=500", headers=tenant.headers
    )
    return Counter(
        (event["resource_id"], next(iter(event["changes"])).split(".")[1])
        for event in response.json()["data"]
    )


async def make_tickets(client: AsyncClient, tenant: Tenant, count: int) -> list[dict[str, Any]]:
    await create_sla_policy(client, tenant, is_default=True)
    contact = await create_contact(client, tenant)
    return [await create_ticket(client, tenant, contact["id"]) for _ in range(count)]


async def test_breaches_are_found_and_announced_once_by_racing_workers(
    live_client: AsyncClient, live_tenant: Tenant, live_app: FastAPI
) -> None:
    tickets = await make_tickets(live_client, live_tenant, 12)
    ids = [t["id"] for t in tickets]
    past = datetime.now(UTC) - timedelta(minutes=5)
    await run_out(live_app, ids[:8], first_response_due_at=past)
    await run_out(live_app, ids[4:10], resolution_due_at=past)
    assert await breaches(live_client, live_tenant) == Counter()

    sessionmaker = live_app.state.sessionmaker

    async def scan() -> int:
        async with sessionmaker.begin() as session:
            return await announce_due_breaches(session, datetime.now(UTC), limit=3)

    # Four workers at once, each a few small rounds: every breach is announced exactly once.
    for _ in range(6):
        await asyncio.gather(*(scan() for _ in range(4)))
    found = await breaches(live_client, live_tenant)
    expected = {(i, "first_response") for i in ids[:8]} | {(i, "resolution") for i in ids[4:10]}
    assert set(found) == expected
    assert set(found.values()) == {1}
    listed = await live_client.get(
        "/v1/tickets?sla_breached=true&limit=100", headers=live_tenant.headers
    )
    assert {t["id"] for t in listed.json()["data"]} == set(ids[:10])
    # Nothing is left to find, and a ticket that still has time is not touched.
    assert await scan() == 0
    untouched = await live_client.get(f"/v1/tickets/{ids[11]}", headers=live_tenant.headers)
    assert untouched.json()["sla"]["first_response"]["status"] == "running"


async def test_a_reply_in_time_is_never_a_breach(
    live_client: AsyncClient, live_tenant: Tenant, live_app: FastAPI
) -> None:
    [ticket] = await make_tickets(live_client, live_tenant, 1)
    user = await create_user(live_client, live_tenant, email=f"{uuid.uuid4().hex}@example.com")
    response = await live_client.post(
        f"/v1/tickets/{ticket['id']}/comments",
        json={"body": "On it", "author_user_id": user["id"]},
        headers=live_tenant.headers,
    )
    assert response.status_code == 201, response.text
    # The first-response target passes after the reply: met, so nothing to announce.
    await run_out(
        live_app, [ticket["id"]], first_response_due_at=datetime.now(UTC) + timedelta(seconds=1)
    )
    await asyncio.sleep(1.1)
    async with live_app.state.sessionmaker.begin() as session:
        await announce_due_breaches(session, datetime.now(UTC))
    assert await breaches(live_client, live_tenant) == Counter()


async def test_the_worker_loop_runs_the_scan(
    live_client: AsyncClient, live_tenant: Tenant, live_app: FastAPI, engine: AsyncEngine
) -> None:
    """`crm-api worker` (and serve --with-worker) run the periodic tasks beside delivery."""
    [ticket] = await make_tickets(live_client, live_tenant, 1)
    await run_out(live_app, [ticket["id"]], first_response_due_at=datetime.now(UTC))
    dispatcher = make_dispatcher(live_app, engine)
    dispatcher.scheduler = Scheduler(
        live_app.state.sessionmaker, periodic_tasks(fast_settings(sla_scan_seconds=0.05))
    )

    async def announced() -> bool:
        return (ticket["id"], "first_response") in await breaches(live_client, live_tenant)

    async with running(dispatcher):
        await eventually(announced)


async def test_racing_replies_make_one_first_response(
    live_client: AsyncClient, live_tenant: Tenant
) -> None:
    [ticket] = await make_tickets(live_client, live_tenant, 1)
    user = await create_user(live_client, live_tenant, email=f"{uuid.uuid4().hex}@example.com")
    url = f"/v1/tickets/{ticket['id']}/comments"
    responses = await asyncio.gather(
        *(
            live_client.post(
                url,
                json={"body": f"Reply {n}", "author_user_id": user["id"]},
                headers=live_tenant.headers,
            )
            for n in range(6)
        )
    )
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    first = min(r.json()["created_at"] for r in responses)
    got = await live_client.get(f"/v1/tickets/{ticket['id']}", headers=live_tenant.headers)
    assert (got.json()["first_responded_at"], got.json()["status"]) == (first, "open")
    history = await live_client.get(
        f"/v1/tickets/{ticket['id']}/status-history", headers=live_tenant.headers
    )
    moves = [(e["from_status"], e["to_status"]) for e in history.json()["data"]]
    assert moves == [(None, "new"), ("new", "open")]


async def test_racing_defaults_leave_one_default(
    live_client: AsyncClient, live_tenant: Tenant
) -> None:
    responses = await asyncio.gather(
        *(
            live_client.post(
                "/v1/sla-policies",
                json={"name": f"P{n}", "is_default": True},
                headers=live_tenant.headers,
            )
            for n in range(6)
        )
    )
    assert {r.status_code for r in responses} <= {201, 409}, [r.text for r in responses]
    listed = await live_client.get("/v1/sla-policies?limit=100", headers=live_tenant.headers)
    assert sum(p["is_default"] for p in listed.json()["data"]) == 1
