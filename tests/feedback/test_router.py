import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from tests.builders import Tenant, assert_problem, create_contact, create_key, create_ticket


async def respond(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/feedback", json=fields, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
async def contact(client: AsyncClient, tenant: Tenant) -> dict[str, Any]:
    return await create_contact(client, tenant)


class TestScores:
    @pytest.mark.parametrize(
        ("kind", "score", "accepted"),
        [
            ("nps", 0, True),
            ("nps", 7.0, True),  # JSON Schema's integer
            ("nps", 10, True),
            ("nps", 11, False),
            ("nps", -1, False),
            ("csat", 1, True),
            ("csat", 5, True),
            ("csat", 0, False),
            ("csat", 6, False),
        ],
    )
    async def test_bounds_by_kind(
        self,
        client: AsyncClient,
        tenant: Tenant,
        contact: dict[str, Any],
        kind: str,
        score: float,
        accepted: bool,
    ) -> None:
        body = {"kind": kind, "score": score, "contact_id": contact["id"]}
        response = await client.post("/v1/feedback", json=body, headers=tenant.headers)
        if accepted:
            assert response.status_code == 201, response.text
        else:
            assert_problem(response, 422, loc=["body", "score"])

    async def test_a_change_of_kind_must_fit_the_score(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        nps = await respond(client, tenant, kind="nps", score=9, contact_id=contact["id"])
        url = f"/v1/feedback/{nps['id']}"
        response = await client.patch(url, json={"kind": "csat"}, headers=tenant.headers)
        assert_problem(response, 422, loc=["body", "score"])
        fixed = await client.patch(url, json={"kind": "csat", "score": 5}, headers=tenant.headers)
        assert (fixed.json()["kind"], fixed.json()["version"]) == ("csat", 2)
        for field in ("kind", "score", "contact_id", "responded_at"):
            response = await client.patch(url, json={field: None}, headers=tenant.headers)
            assert_problem(response, 422, loc=["body", field])

    @pytest.mark.parametrize(
        ("fields", "loc"),
        [
            ({"contact_id": str(uuid.uuid4())}, ["body", "contact_id"]),
            ({"ticket_id": str(uuid.uuid4())}, ["body", "ticket_id"]),
            ({"channel": "pigeon"}, ["body", "channel"]),
            ({"kind": "ces"}, ["body", "kind"]),
            ({"score": "9"}, ["body", "score"]),
            ({"score": True}, ["body", "score"]),
            ({"score": 8.5}, ["body", "score"]),
            ({"comment": ""}, ["body", "comment"]),
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
        body = {"kind": "nps", "score": 8, "contact_id": contact["id"], **fields}
        response = await client.post("/v1/feedback", json=body, headers=tenant.headers)
        assert_problem(response, 422, loc=loc)


class TestCsatOnTickets:
    async def test_the_latest_csat_shows_on_its_ticket(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        ticket = await create_ticket(client, tenant, contact["id"])
        assert ticket["csat"] is None
        url = f"/v1/tickets/{ticket['id']}"
        first = await respond(
            client,
            tenant,
            kind="csat",
            score=2,
            comment="Slow",
            contact_id=contact["id"],
            ticket_id=ticket["id"],
            responded_at="2026-11-01T10:00:00Z",
        )
        # An NPS answer about the ticket is not its CSAT.
        await respond(
            client, tenant, kind="nps", score=3, contact_id=contact["id"], ticket_id=ticket["id"]
        )
        shown = (await client.get(url, headers=tenant.headers)).json()
        assert shown["csat"] == {
            "feedback_id": first["id"],
            "score": 2,
            "comment": "Slow",
            "responded_at": "2026-11-01T10:00:00Z",
        }
        later = await respond(
            client,
            tenant,
            kind="csat",
            score=5,
            contact_id=contact["id"],
            ticket_id=ticket["id"],
            responded_at="2026-11-02T10:00:00Z",
        )
        shown = (await client.get(url, headers=tenant.headers)).json()
        assert (shown["csat"]["feedback_id"], shown["csat"]["score"]) == (later["id"], 5)
        assert shown["version"] == 3
        # Deleting the latest shows the one before; moving it to no ticket, none.
        await client.delete(f"/v1/feedback/{later['id']}", headers=tenant.headers)
        shown = (await client.get(url, headers=tenant.headers)).json()
        assert shown["csat"]["feedback_id"] == first["id"]
        await client.patch(
            f"/v1/feedback/{first['id']}", json={"ticket_id": None}, headers=tenant.headers
        )
        shown = (await client.get(url, headers=tenant.headers)).json()
        assert (shown["csat"], shown["version"]) == (None, 5)
        events = await client.get(
            f"/v1/events?resource_id={ticket['id']}&type=ticket.updated", headers=tenant.headers
        )
        assert events.json()["data"][0]["changes"]["csat"]["old"] is None
        assert events.json()["data"][0]["changes"]["csat"]["new"]["score"] == 2


class TestUpsertAndList:
    async def test_a_survey_tool_syncs_its_responses(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        url = "/v1/feedback/external/SURVEY-1"
        body = {"kind": "nps", "score": 9, "contact_id": contact["id"], "channel": "email"}
        assert_problem(await client.put(url, json={"score": 9}, headers=tenant.headers), 422)
        made = await client.put(url, json=body, headers=tenant.headers)
        assert made.status_code == 201, made.text
        again = await client.put(url, json=body, headers=tenant.headers)
        assert (again.status_code, again.json()["version"]) == (200, 1)
        items = [
            {"external_id": "SURVEY-1", "score": 10},
            {"external_id": "SURVEY-2", "kind": "csat", "score": 9, "contact_id": contact["id"]},
        ]
        response = await client.post(
            "/v1/feedback/batch/upsert", json={"items": items}, headers=tenant.headers
        )
        results = response.json()["results"]
        assert [r["status"] for r in results] == ["updated", "error"]
        assert results[1]["error"]["errors"][0]["loc"] == ["body", "items", 1, "score"]

    async def test_filters(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        promoter = await respond(client, tenant, kind="nps", score=10, contact_id=contact["id"])
        detractor = await respond(
            client, tenant, kind="nps", score=4, contact_id=contact["id"], tags=["pricing"]
        )
        csat = await respond(client, tenant, kind="csat", score=4, contact_id=contact["id"])

        async def ids(query: str) -> list[str]:
            response = await client.get(f"/v1/feedback?{query}", headers=tenant.headers)
            assert response.status_code == 200, response.text
            return [f["id"] for f in response.json()["data"]]

        assert await ids("") == [csat["id"], detractor["id"], promoter["id"]]
        assert await ids("kind=nps&max_score=6") == [detractor["id"]]
        assert await ids("kind=nps&min_score=9") == [promoter["id"]]
        assert await ids("tag=pricing") == [detractor["id"]]


class TestFeedbackAuth:
    async def test_no_key_wrong_scope_other_workspace(
        self,
        client: AsyncClient,
        tenant: Tenant,
        other_tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        assert_problem(await client.get("/v1/feedback"), 401)
        reader = await create_key(sessionmaker, tenant, [Scope.feedback_read])
        response = await client.post("/v1/feedback", json={}, headers=reader.headers)
        assert_problem(response, 403)
        tickets_only = await create_key(sessionmaker, tenant, [Scope.tickets_read])
        assert_problem(await client.get("/v1/feedback", headers=tickets_only.headers), 403)
        their_contact = await create_contact(client, other_tenant)
        their_ticket = await create_ticket(client, other_tenant, their_contact["id"])
        theirs = await respond(
            client, other_tenant, kind="nps", score=7, contact_id=their_contact["id"]
        )
        url = f"/v1/feedback/{theirs['id']}"
        for method, body in [("GET", None), ("PATCH", {"score": 8}), ("DELETE", None)]:
            response = await client.request(method, url, json=body, headers=tenant.headers)
            assert_problem(response, 404)
        mine = await create_contact(client, tenant)
        body = {
            "kind": "csat",
            "score": 5,
            "contact_id": mine["id"],
            "ticket_id": their_ticket["id"],
        }
        response = await client.post("/v1/feedback", json=body, headers=tenant.headers)
        assert_problem(response, 422, loc=["body", "ticket_id"])
