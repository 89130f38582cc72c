import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from crm_api.tickets.models import Ticket
from crm_api.tickets.sla import BusinessHours, add_business_time
from tests.builders import (
    Tenant,
    assert_problem,
    create_company,
    create_contact,
    create_key,
    create_sla_policy,
    create_ticket,
    create_user,
)


async def event_types(client: AsyncClient, tenant: Tenant, resource_id: str) -> list[str]:
    response = await client.get(
        f"/v1/events?resource_id={resource_id}&limit=100", headers=tenant.headers
    )
    return [event["type"] for event in response.json()["data"]]


async def statuses(client: AsyncClient, tenant: Tenant, ticket_id: str) -> list[Any]:
    response = await client.get(f"/v1/tickets/{ticket_id}/status-history", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return [(e["from_status"], e["to_status"]) for e in response.json()["data"]]


async def patch(client: AsyncClient, tenant: Tenant, ticket_id: str, **fields: Any) -> Any:
    return await client.patch(f"/v1/tickets/{ticket_id}", json=fields, headers=tenant.headers)


async def reply(
    client: AsyncClient, tenant: Tenant, ticket_id: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/tickets/{ticket_id}/comments",
        json={"body": "Hello", **fields},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture
async def contact(client: AsyncClient, tenant: Tenant) -> dict[str, Any]:
    return await create_contact(client, tenant, email="buyer@example.com")


class TestCreateTicket:
    async def test_defaults_and_the_default_policy(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        await create_sla_policy(client, tenant, name="Other")
        policy = await create_sla_policy(client, tenant, is_default=True)
        response = await client.post(
            "/v1/tickets",
            json={"subject": "Charged twice", "contact_id": contact["id"], "channel": "email"},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
        ticket = response.json()
        assert response.headers["location"].endswith(f"/v1/tickets/{ticket['id']}")
        assert (ticket["status"], ticket["priority"], ticket["version"]) == ("new", "normal", 1)
        sla = ticket["sla"]
        assert sla["policy_id"] == policy["id"]
        created = at(ticket["created_at"])
        assert at(sla["first_response"]["due_at"]) == created + timedelta(hours=8)
        assert at(sla["resolution"]["due_at"]) == created + timedelta(hours=40)
        assert sla["first_response"]["status"] == "running"
        assert 8 * 3600 - 60 < sla["first_response"]["remaining_seconds"] <= 8 * 3600
        assert sla["first_response"]["reached_at"] is None
        assert await statuses(client, tenant, ticket["id"]) == [(None, "new")]
        assert await event_types(client, tenant, ticket["id"]) == ["ticket.created"]

    async def test_without_a_policy_there_are_no_targets(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        ticket = await create_ticket(client, tenant, contact["id"])
        assert ticket["sla"] == {"policy_id": None, "first_response": None, "resolution": None}

    async def test_business_hours_count_from_creation_by_priority(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        """The clock arithmetic is checked on hand-computed cases in test_sla.py; here, that a
        ticket is clocked by its own policy's schedule and its own priority."""
        schedule = {
            "timezone": "America/New_York",
            **{day: [{"start": "09:00", "end": "17:00"}] for day in ("monday", "wednesday")},
        }
        policy = await create_sla_policy(client, tenant, business_hours=schedule)
        ticket = await create_ticket(
            client, tenant, contact["id"], priority="urgent", sla_policy_id=policy["id"]
        )
        hours = BusinessHours.from_json(policy["business_hours"])
        created = at(ticket["created_at"])
        due = at(ticket["sla"]["first_response"]["due_at"])
        assert due == add_business_time(created, 60, hours)
        assert at(ticket["sla"]["resolution"]["due_at"]) == add_business_time(created, 240, hours)

        moved = (await patch(client, tenant, ticket["id"], priority="normal")).json()
        assert at(moved["sla"]["first_response"]["due_at"]) == add_business_time(
            created, 480, hours
        )
        cleared = (await patch(client, tenant, ticket["id"], sla_policy_id=None)).json()
        assert cleared["sla"] == {"policy_id": None, "first_response": None, "resolution": None}

    @pytest.mark.parametrize(
        ("fields", "loc"),
        [
            ({"contact_id": None}, ["body", "contact_id"]),
            ({"contact_id": str(uuid.uuid4())}, ["body", "contact_id"]),
            ({"company_id": str(uuid.uuid4())}, ["body", "company_id"]),
            ({"assignee_id": str(uuid.uuid4())}, ["body", "assignee_id"]),
            ({"team_id": str(uuid.uuid4())}, ["body", "team_id"]),
            ({"sla_policy_id": str(uuid.uuid4())}, ["body", "sla_policy_id"]),
            ({"priority": "critical"}, ["body", "priority"]),
            ({"priority": None}, ["body", "priority"]),
            ({"status": "done"}, ["body", "status"]),
            ({"channel": "fax"}, ["body", "channel"]),
            ({"subject": "   "}, ["body", "subject"]),
            ({"description": "x" * 50_001}, ["body", "description"]),
            ({"unknown": 1}, ["body", "unknown"]),
        ],
    )
    async def test_invalid_input_is_422(
        self,
        client: AsyncClient,
        tenant: Tenant,
        contact: dict[str, Any],
        fields: dict[str, Any],
        loc: list[Any],
    ) -> None:
        body = {"subject": "S", "contact_id": contact["id"], **fields}
        response = await client.post("/v1/tickets", json=body, headers=tenant.headers)
        assert_problem(response, 422, loc=loc)

    async def test_an_inactive_assignee_is_422(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        user = await create_user(client, tenant, active=False)
        response = await client.post(
            "/v1/tickets",
            json={"subject": "S", "contact_id": contact["id"], "assignee_id": user["id"]},
            headers=tenant.headers,
        )
        assert_problem(response, 422, loc=["body", "assignee_id"])

    async def test_idempotent_create(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        headers = {**tenant.headers, "Idempotency-Key": "t-1"}
        body = {"subject": "S", "contact_id": contact["id"]}
        first = await client.post("/v1/tickets", json=body, headers=headers)
        again = await client.post("/v1/tickets", json=body, headers=headers)
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"


class TestStatusMachine:
    @pytest.mark.parametrize(
        ("path", "refused"),
        [
            (["open", "pending", "open", "resolved", "closed"], "open"),
            (["pending", "resolved"], "new"),
            (["closed"], "resolved"),
            (["open"], "new"),
        ],
    )
    async def test_moves_and_refusals(
        self,
        client: AsyncClient,
        tenant: Tenant,
        contact: dict[str, Any],
        path: list[str],
        refused: str,
    ) -> None:
        ticket = await create_ticket(client, tenant, contact["id"])
        for status in path:
            response = await patch(client, tenant, ticket["id"], status=status)
            assert response.status_code == 200, response.text
        response = await patch(client, tenant, ticket["id"], status=refused)
        problem = assert_problem(response, 409)
        assert problem["type"].endswith("/invalid-transition")
        expected = [(None, "new"), *zip(["new", *path], path, strict=False)]
        assert await statuses(client, tenant, ticket["id"]) == expected

    async def test_resolving_reopening_and_closing_stamp_the_ticket(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        ticket = await create_ticket(client, tenant, contact["id"])
        resolved = (await patch(client, tenant, ticket["id"], status="resolved")).json()
        assert resolved["resolved_at"] is not None
        assert resolved["closed_at"] is None
        reopened = (await patch(client, tenant, ticket["id"], status="open")).json()
        assert (reopened["resolved_at"], reopened["reopened_count"]) == (None, 1)
        closed = (await patch(client, tenant, ticket["id"], status="closed")).json()
        # Closing an unresolved ticket resolves it at the same moment.
        assert closed["resolved_at"] == closed["closed_at"] is not None
        assert await event_types(client, tenant, ticket["id"]) == [
            "ticket.created",
            *["ticket.updated", "ticket.status_changed"] * 3,
        ]
        events = await client.get(
            f"/v1/events?resource_id={ticket['id']}&type=ticket.status_changed",
            headers=tenant.headers,
        )
        reopening = events.json()["data"][1]["changes"]
        assert reopening["status"] == {"old": "resolved", "new": "open"}
        assert reopening["reopened_count"] == {"old": 0, "new": 1}

    async def test_a_closed_ticket_is_final(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        ticket = await create_ticket(client, tenant, contact["id"], status="closed")
        assert_problem(await patch(client, tenant, ticket["id"], subject="New"), 409)
        response = await client.post(
            f"/v1/tickets/{ticket['id']}/comments", json={"body": "Hi"}, headers=tenant.headers
        )
        assert_problem(response, 409)
        # Sending what it already holds changes nothing, so it is no error.
        unchanged = await patch(client, tenant, ticket["id"], subject=ticket["subject"])
        assert unchanged.json()["version"] == 1
        got = await client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.headers)
        assert got.json()["subject"] == ticket["subject"]


class TestComments:
    async def test_the_first_staff_reply_is_the_first_response(
        self,
        client: AsyncClient,
        tenant: Tenant,
        contact: dict[str, Any],
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        user = await create_user(client, tenant)
        agent = await create_key(sessionmaker, tenant, [Scope.tickets_write], user_id=user["id"])
        await create_sla_policy(client, tenant, is_default=True)
        ticket = await create_ticket(client, tenant, contact["id"])
        note = await reply(client, agent, ticket["id"], kind="note")
        assert note["author_user_id"] == user["id"]  # the key's user, by default
        got = (await client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.headers)).json()
        assert (got["first_responded_at"], got["status"]) == (None, "new")  # notes don't count

        answer = await reply(client, agent, ticket["id"])
        got = (await client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.headers)).json()
        assert got["first_responded_at"] == answer["created_at"]
        assert got["status"] == "open"
        assert got["sla"]["first_response"]["status"] == "met"
        assert got["sla"]["first_response"]["remaining_seconds"] is None
        await reply(client, agent, ticket["id"])
        again = (await client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.headers)).json()
        assert again["first_responded_at"] == answer["created_at"]
        assert await statuses(client, tenant, ticket["id"]) == [(None, "new"), ("new", "open")]

        listed = await client.get(
            f"/v1/tickets/{ticket['id']}/comments?kind=reply", headers=tenant.headers
        )
        replies = [c["id"] for c in listed.json()["data"]]
        assert len(replies) == 2
        assert replies[0] == answer["id"]

    async def test_the_customer_writing_back_opens_the_ticket_again(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        ticket = await create_ticket(client, tenant, contact["id"], status="pending")
        await reply(client, tenant, ticket["id"], author_contact_id=contact["id"])
        await patch(client, tenant, ticket["id"], status="resolved")
        await reply(client, tenant, ticket["id"], author_contact_id=contact["id"])
        got = (await client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.headers)).json()
        assert (got["status"], got["reopened_count"], got["first_responded_at"]) == (
            "open",
            1,
            None,
        )
        assert await statuses(client, tenant, ticket["id"]) == [
            (None, "pending"),
            ("pending", "open"),
            ("open", "resolved"),
            ("resolved", "open"),
        ]

    @pytest.mark.parametrize(
        ("fields", "loc"),
        [
            ({}, ["body", "author_user_id"]),  # the admin key acts as no user
            ({"author_user_id": str(uuid.uuid4())}, ["body", "author_user_id"]),
            ({"author_contact_id": str(uuid.uuid4())}, ["body", "author_contact_id"]),
            ({"body": ""}, ["body", "body"]),
            ({"kind": "tweet"}, ["body", "kind"]),
        ],
    )
    async def test_invalid_comments_are_422(
        self,
        client: AsyncClient,
        tenant: Tenant,
        contact: dict[str, Any],
        fields: dict[str, Any],
        loc: list[Any],
    ) -> None:
        ticket = await create_ticket(client, tenant, contact["id"])
        body = {"body": "Hi", **fields}
        response = await client.post(
            f"/v1/tickets/{ticket['id']}/comments", json=body, headers=tenant.headers
        )
        assert_problem(response, 422, loc=loc)

    async def test_a_note_by_the_contact_or_two_authors_are_422(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        user = await create_user(client, tenant)
        ticket = await create_ticket(client, tenant, contact["id"])
        url = f"/v1/tickets/{ticket['id']}/comments"
        note = {"body": "Hi", "kind": "note", "author_contact_id": contact["id"]}
        assert_problem(await client.post(url, json=note, headers=tenant.headers), 422)
        both = {"body": "Hi", "author_contact_id": contact["id"], "author_user_id": user["id"]}
        assert_problem(await client.post(url, json=both, headers=tenant.headers), 422)
        assert (await client.get(url, headers=tenant.headers)).json()["data"] == []

    async def test_a_comment_is_found_only_under_its_ticket(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        first = await create_ticket(client, tenant, contact["id"])
        second = await create_ticket(client, tenant, contact["id"])
        comment = await reply(client, tenant, first["id"], author_contact_id=contact["id"])
        ok = await client.get(
            f"/v1/tickets/{first['id']}/comments/{comment['id']}", headers=tenant.headers
        )
        assert ok.json() == comment
        other = await client.get(
            f"/v1/tickets/{second['id']}/comments/{comment['id']}", headers=tenant.headers
        )
        assert_problem(other, 404)
        assert await event_types(client, tenant, comment["id"]) == ["ticket_comment.created"]


class TestLateTargets:
    async def test_a_late_reply_and_a_late_resolution_are_announced_once(
        self,
        client: AsyncClient,
        tenant: Tenant,
        contact: dict[str, Any],
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        user = await create_user(client, tenant)
        await create_sla_policy(client, tenant, is_default=True)
        ticket = await create_ticket(client, tenant, contact["id"])
        async with sessionmaker.begin() as session:  # both targets ran out an hour ago
            past = datetime.fromisoformat(ticket["created_at"]) - timedelta(hours=1)
            await session.execute(
                update(Ticket)
                .where(Ticket.id == uuid.UUID(ticket["id"]))
                .values(first_response_due_at=past, resolution_due_at=past)
            )
        got = (await client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.headers)).json()
        assert got["sla"]["first_response"]["status"] == "breached"
        assert got["sla"]["first_response"]["remaining_seconds"] <= -3600

        await reply(client, tenant, ticket["id"], author_user_id=user["id"])
        await reply(client, tenant, ticket["id"], author_user_id=user["id"])
        await patch(client, tenant, ticket["id"], status="resolved")
        await patch(client, tenant, ticket["id"], status="open")
        await patch(client, tenant, ticket["id"], status="resolved")
        events = await client.get(
            f"/v1/events?resource_id={ticket['id']}&type=ticket.sla_breached",
            headers=tenant.headers,
        )
        changes = [e["changes"] for e in events.json()["data"]]
        assert changes == [
            {"sla.first_response.status": {"old": "running", "new": "breached"}},
            {"sla.resolution.status": {"old": "running", "new": "breached"}},
        ]
        listed = await client.get("/v1/tickets?sla_breached=true", headers=tenant.headers)
        assert [t["id"] for t in listed.json()["data"]] == [ticket["id"]]


class TestUpsert:
    async def test_create_replay_update(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        url = "/v1/tickets/external/ZD-1"
        response = await client.put(url, json={"subject": "S"}, headers=tenant.headers)
        assert_problem(response, 422, loc=["body", "contact_id"])
        body = {"subject": "S", "contact_id": contact["id"], "status": "open"}
        made = await client.put(url, json=body, headers=tenant.headers)
        assert made.status_code == 201, made.text
        replay = await client.put(url, json=body, headers=tenant.headers)
        assert (replay.status_code, replay.json()["version"]) == (200, 1)
        solved = await client.put(url, json={"status": "resolved"}, headers=tenant.headers)
        assert (solved.json()["status"], solved.json()["version"]) == ("resolved", 2)
        got = await client.get(url, headers=tenant.headers)
        assert got.json()["id"] == made.json()["id"]

    async def test_batch(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        await create_ticket(client, tenant, contact["id"], external_id="ZD-1", status="closed")
        items = [
            {"external_id": "ZD-1", "status": "open"},  # closed is final
            {"external_id": "ZD-2", "subject": "New", "contact_id": contact["id"]},
            {"external_id": "ZD-3", "subject": "No contact"},
        ]
        response = await client.post(
            "/v1/tickets/batch/upsert", json={"items": items}, headers=tenant.headers
        )
        results = response.json()["results"]
        assert [r["status"] for r in results] == ["error", "created", "error"]
        assert results[0]["error"]["status"] == 409
        assert results[2]["error"]["errors"][0]["loc"] == ["body", "items", 2, "contact_id"]


class TestLists:
    async def test_filters_and_sorts(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        user = await create_user(client, tenant)
        company = await create_company(client, tenant)
        low = await create_ticket(client, tenant, contact["id"], priority="low", tags=["vip"])
        urgent = await create_ticket(
            client,
            tenant,
            contact["id"],
            subject="Cannot log in",
            priority="urgent",
            assignee_id=user["id"],
            company_id=company["id"],
            status="pending",
        )
        normal = await create_ticket(client, tenant, contact["id"], channel="phone")

        async def ids(query: str) -> list[str]:
            response = await client.get(f"/v1/tickets?{query}", headers=tenant.headers)
            assert response.status_code == 200, response.text
            return [t["id"] for t in response.json()["data"]]

        assert await ids("sort=-priority") == [urgent["id"], normal["id"], low["id"]]
        assert await ids("status=new&status=pending") == [low["id"], urgent["id"], normal["id"]]
        assert await ids("status=pending") == [urgent["id"]]
        assert await ids("priority=low&priority=urgent") == [low["id"], urgent["id"]]
        assert await ids(f"assignee_id={user['id']}") == [urgent["id"]]
        assert await ids("unassigned=true") == [low["id"], normal["id"]]
        assert await ids(f"company_id={company['id']}") == [urgent["id"]]
        assert await ids("channel=phone") == [normal["id"]]
        assert await ids("tag=vip") == [low["id"]]
        assert await ids("q=log") == [urgent["id"]]
        assert await ids("sla_breached=false&limit=1") == [low["id"]]
        assert_problem(await client.get("/v1/tickets?status=done", headers=tenant.headers), 422)
        assert_problem(await client.get("/v1/tickets?sort=subject", headers=tenant.headers), 422)


class TestWhatTicketsPointAt:
    async def test_deleting_a_company_or_team_unlinks_tickets(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        company = await create_company(client, tenant)
        team = (
            await client.post("/v1/teams", json={"name": "Support"}, headers=tenant.headers)
        ).json()
        ticket = await create_ticket(
            client, tenant, contact["id"], company_id=company["id"], team_id=team["id"]
        )
        await client.delete(f"/v1/companies/{company['id']}", headers=tenant.headers)
        await client.delete(f"/v1/teams/{team['id']}", headers=tenant.headers)
        got = (await client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.headers)).json()
        assert (got["company_id"], got["team_id"], got["version"]) == (None, None, 3)

    async def test_an_assignee_stays_until_their_tickets_are_given_away(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        user = await create_user(client, tenant)
        ticket = await create_ticket(client, tenant, contact["id"], assignee_id=user["id"])
        response = await client.delete(f"/v1/users/{user['id']}", headers=tenant.headers)
        assert assert_problem(response, 409)["owned"] == {"tickets": 1}
        await patch(client, tenant, ticket["id"], assignee_id=None)
        response = await client.delete(f"/v1/users/{user['id']}", headers=tenant.headers)
        assert response.status_code == 204


class TestTicketAuth:
    async def test_no_key_wrong_scope_other_workspace(
        self,
        client: AsyncClient,
        tenant: Tenant,
        other_tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        assert_problem(await client.get("/v1/tickets"), 401)
        reader = await create_key(sessionmaker, tenant, [Scope.tickets_read])
        assert (await client.get("/v1/tickets", headers=reader.headers)).status_code == 200
        response = await client.post("/v1/tickets", json={"subject": "S"}, headers=reader.headers)
        assert_problem(response, 403)
        deals_only = await create_key(sessionmaker, tenant, [Scope.deals_write])
        assert_problem(await client.get("/v1/tickets", headers=deals_only.headers), 403)
        assert_problem(await client.get("/v1/sla-policies", headers=reader.headers), 403)

        their_contact = await create_contact(client, other_tenant)
        theirs = await create_ticket(client, other_tenant, their_contact["id"])
        comment = await reply(
            client, other_tenant, theirs["id"], author_contact_id=their_contact["id"]
        )
        policy = await create_sla_policy(client, other_tenant)
        url = f"/v1/tickets/{theirs['id']}"
        for method, path, body in [
            ("GET", url, None),
            ("PATCH", url, {"subject": "x"}),
            ("DELETE", url, None),
            ("GET", f"{url}/status-history", None),
            ("GET", f"{url}/comments", None),
            ("POST", f"{url}/comments", {"body": "x"}),
            ("GET", f"{url}/comments/{comment['id']}", None),
            ("GET", f"/v1/sla-policies/{policy['id']}", None),
            ("PATCH", f"/v1/sla-policies/{policy['id']}", {"name": "x"}),
            ("DELETE", f"/v1/sla-policies/{policy['id']}", None),
        ]:
            response = await client.request(method, path, json=body, headers=tenant.headers)
            assert_problem(response, 404)
        # Their contact and policy cannot be used here either.
        mine = {"subject": "S", "contact_id": their_contact["id"]}
        response = await client.post("/v1/tickets", json=mine, headers=tenant.headers)
        assert_problem(response, 422, loc=["body", "contact_id"])
        contact = await create_contact(client, tenant)
        mine = {"subject": "S", "contact_id": contact["id"], "sla_policy_id": policy["id"]}
        response = await client.post("/v1/tickets", json=mine, headers=tenant.headers)
        assert_problem(response, 422, loc=["body", "sla_policy_id"])


class TestDeleteTicket:
    async def test_if_match_then_gone(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        ticket = await create_ticket(client, tenant, contact["id"], external_id="ZD-DEL")
        url = f"/v1/tickets/{ticket['id']}"
        stale = {**tenant.headers, "If-Match": '"3"'}
        assert_problem(await client.delete(url, headers=stale), 412)
        assert_problem(await client.patch(url, json={"status": "open"}, headers=stale), 412)
        assert (await client.delete(url, headers=tenant.headers)).status_code == 204
        assert_problem(await client.get(url, headers=tenant.headers), 404)
        assert_problem(await client.get(f"{url}/comments", headers=tenant.headers), 404)
        assert_problem(await client.get("/v1/tickets/external/ZD-DEL", headers=tenant.headers), 404)
        assert await event_types(client, tenant, ticket["id"]) == [
            "ticket.created",
            "ticket.deleted",
        ]
