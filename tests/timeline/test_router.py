"""The customer 360 timeline on a hand-built history whose every time is set, so the order is
known: entries of every kind, in time order, paged without gaps or repeats."""

import uuid
from datetime import datetime
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from crm_api.deals.models import Deal, DealStageChange
from crm_api.tickets.models import Ticket, TicketComment
from tests.builders import (
    Tenant,
    assert_problem,
    create_company,
    create_contact,
    create_deal,
    create_key,
    create_pipeline,
    create_ticket,
)


async def set_time(
    sessionmaker: async_sessionmaker[AsyncSession], model: Any, at: str, *where: Any
) -> None:
    """Back-date rows' created_at (the API stamps it with now)."""
    async with sessionmaker.begin() as session:
        moment = datetime.fromisoformat(at)
        await session.execute(update(model).where(*where).values(created_at=moment))


@pytest.fixture
async def history(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> dict[str, Any]:
    """Ada at Acme: a deal (3 Jan) moved on 7 Jan, a call (5 Jan), a ticket (10 Jan) answered
    on 11 Jan, an NPS answer (12 Jan); Bob at Acme: an NPS answer (8 Jan); Eve elsewhere."""
    headers = tenant.headers
    acme = await create_company(client, tenant)
    ada = await create_contact(client, tenant, email="ada@example.com", company_id=acme["id"])
    bob = await create_contact(client, tenant, email="bob@example.com", company_id=acme["id"])
    eve = await create_contact(client, tenant, email="eve@example.com")
    pipeline = await create_pipeline(client, tenant)
    deal = await create_deal(
        client, tenant, pipeline["stages"][0]["id"], contact_ids=[ada["id"]], company_id=acme["id"]
    )
    await client.patch(
        f"/v1/deals/{deal['id']}", json={"stage_id": pipeline["stages"][1]["id"]}, headers=headers
    )
    deal_id = uuid.UUID(deal["id"])
    await set_time(sessionmaker, Deal, "2026-01-03T09:00:00Z", Deal.id == deal_id)
    moved = DealStageChange.deal_id == deal_id
    await set_time(
        sessionmaker,
        DealStageChange,
        "2026-01-03T09:00:00Z",
        moved,
        DealStageChange.from_stage_id.is_(None),
    )
    await set_time(
        sessionmaker,
        DealStageChange,
        "2026-01-07T09:00:00Z",
        moved,
        DealStageChange.from_stage_id.is_not(None),
    )

    def post(path: str, body: dict[str, Any]) -> Any:
        return client.post(path, json=body, headers=headers)

    call = (
        await post(
            "/v1/interactions",
            {
                "channel": "call",
                "contact_id": ada["id"],
                "company_id": acme["id"],
                "occurred_at": "2026-01-05T09:00:00Z",
            },
        )
    ).json()
    gone = (await post("/v1/interactions", {"channel": "sms", "contact_id": ada["id"]})).json()
    await client.delete(f"/v1/interactions/{gone['id']}", headers=headers)
    ticket = await create_ticket(client, tenant, ada["id"], company_id=acme["id"])
    await set_time(
        sessionmaker, Ticket, "2026-01-10T09:00:00Z", Ticket.id == uuid.UUID(ticket["id"])
    )
    comment = (
        await post(
            f"/v1/tickets/{ticket['id']}/comments",
            {"body": "Thanks", "author_contact_id": ada["id"]},
        )
    ).json()
    await set_time(
        sessionmaker,
        TicketComment,
        "2026-01-11T09:00:00Z",
        TicketComment.id == uuid.UUID(comment["id"]),
    )
    nps = {"kind": "nps", "score": 9}
    ada_nps = (
        await post(
            "/v1/feedback", {**nps, "contact_id": ada["id"], "responded_at": "2026-01-12T09:00:00Z"}
        )
    ).json()
    bob_nps = (
        await post(
            "/v1/feedback", {**nps, "contact_id": bob["id"], "responded_at": "2026-01-08T09:00:00Z"}
        )
    ).json()
    await post("/v1/feedback", {**nps, "contact_id": eve["id"]})
    await post("/v1/interactions", {"channel": "call", "contact_id": eve["id"]})
    moves = await client.get(f"/v1/deals/{deal['id']}/stage-history", headers=headers)
    return {
        "ada": ada,
        "acme": acme,
        "ada_entries": [
            ("feedback", ada_nps["id"]),
            ("ticket_comment", comment["id"]),
            ("ticket", ticket["id"]),
            ("deal_stage_change", moves.json()["data"][1]["id"]),
            ("interaction", call["id"]),
            ("deal", deal["id"]),
        ],
        "bob_nps": bob_nps,
    }


async def entries(client: AsyncClient, tenant: Tenant, path: str) -> list[tuple[str, str]]:
    response = await client.get(path, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return [(e["kind"], e["id"]) for e in response.json()["data"]]


class TestContactTimeline:
    async def test_every_kind_newest_first_with_its_record(
        self, client: AsyncClient, tenant: Tenant, history: dict[str, Any]
    ) -> None:
        url = f"/v1/contacts/{history['ada']['id']}/timeline"
        response = await client.get(url, headers=tenant.headers)
        data = response.json()["data"]
        assert [(e["kind"], e["id"]) for e in data] == history["ada_entries"]
        assert data[0]["feedback"]["score"] == 9
        assert data[0]["occurred_at"] == "2026-01-12T09:00:00Z"
        assert data[2]["ticket"]["sla"] is not None
        assert data[3]["deal_stage_change"]["from_stage_id"] is not None
        assert all(e[e["kind"]]["id"] == e["id"] for e in data)
        # The other record fields stay null.
        assert data[0]["interaction"] is None
        assert data[0]["ticket"] is None
        oldest_first = await entries(client, tenant, f"{url}?sort=occurred_at")
        assert oldest_first == history["ada_entries"][::-1]

    async def test_pages_visit_each_entry_once(
        self, client: AsyncClient, tenant: Tenant, history: dict[str, Any]
    ) -> None:
        url = f"/v1/contacts/{history['ada']['id']}/timeline?limit=2"
        seen: list[tuple[str, str]] = []
        next_url: str | None = url
        while next_url:
            response = await client.get(next_url, headers=tenant.headers)
            body = response.json()
            seen += [(e["kind"], e["id"]) for e in body["data"]]
            next_url = f"{url}&cursor={body['next_cursor']}" if body["next_cursor"] else None
            if next_url:
                assert response.headers["link"].endswith('rel="next"')
        assert seen == history["ada_entries"]

    async def test_filters(
        self, client: AsyncClient, tenant: Tenant, history: dict[str, Any]
    ) -> None:
        url = f"/v1/contacts/{history['ada']['id']}/timeline"
        expected = history["ada_entries"]
        kinds = await entries(client, tenant, f"{url}?kind=interaction&kind=feedback")
        assert kinds == [expected[0], expected[4]]
        window = "occurred_after=2026-01-05T09:00:00Z&occurred_before=2026-01-11T00:00:00Z"
        assert await entries(client, tenant, f"{url}?{window}") == expected[2:5]
        first = await client.get(f"{url}?limit=1", headers=tenant.headers)
        cursor = first.json()["next_cursor"]
        # A cursor is bound to the filters it was made for.
        response = await client.get(f"{url}?kind=deal&cursor={cursor}", headers=tenant.headers)
        assert_problem(response, 422, loc=["query", "cursor"])
        for query in ("kind=invoice", "sort=created_at", "cursor=nonsense", "limit=0"):
            assert_problem(await client.get(f"{url}?{query}", headers=tenant.headers), 422)


class TestCompanyTimeline:
    async def test_its_records_and_its_contacts_responses(
        self, client: AsyncClient, tenant: Tenant, history: dict[str, Any]
    ) -> None:
        url = f"/v1/companies/{history['acme']['id']}/timeline"
        ada_entries = history["ada_entries"]
        bob = ("feedback", history["bob_nps"]["id"])
        # The company's deal, move, call, ticket and comment; Ada's and Bob's (8 Jan) answers.
        expected = [*ada_entries[:3], bob, *ada_entries[3:]]
        assert await entries(client, tenant, url) == expected


class TestTimelineAuth:
    async def test_scopes_and_workspaces(
        self,
        client: AsyncClient,
        tenant: Tenant,
        other_tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
        history: dict[str, Any],
    ) -> None:
        url = f"/v1/contacts/{history['ada']['id']}/timeline"
        assert_problem(await client.get(url), 401)
        calls_only = await create_key(
            sessionmaker, tenant, [Scope.contacts_read, Scope.interactions_read]
        )
        assert await entries(client, calls_only, url) == [history["ada_entries"][4]]
        contacts_only = await create_key(sessionmaker, tenant, [Scope.contacts_read])
        assert_problem(await client.get(url, headers=contacts_only.headers), 403)
        no_contacts = await create_key(sessionmaker, tenant, [Scope.interactions_read])
        assert_problem(await client.get(url, headers=no_contacts.headers), 403)
        assert_problem(await client.get(url, headers=other_tenant.headers), 404)
        company_url = f"/v1/companies/{history['acme']['id']}/timeline"
        assert_problem(await client.get(company_url, headers=other_tenant.headers), 404)
