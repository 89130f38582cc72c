import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from tests.builders import (
    Tenant,
    assert_problem,
    create_company,
    create_contact,
    create_deal,
    create_key,
    create_pipeline,
    create_user,
)


async def record(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/interactions", json={"channel": "call", **fields}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


class TestRecord:
    async def test_a_call_with_its_links(
        self, client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        contact = await create_contact(client, tenant)
        company = await create_company(client, tenant)
        pipeline = await create_pipeline(client, tenant)
        deal = await create_deal(client, tenant, pipeline["stages"][0]["id"])
        user = await create_user(client, tenant)
        rep = await create_key(sessionmaker, tenant, [Scope.interactions_write], user_id=user["id"])
        call = await record(
            client,
            rep,
            direction="outbound",
            occurred_at="2026-11-30T15:05:00+01:00",
            duration_seconds=540,
            subject="Renewal terms",
            summary="Agreed to send a quote.",
            contact_id=contact["id"],
            company_id=company["id"],
            deal_id=deal["id"],
        )
        assert call["occurred_at"] == "2026-11-30T14:05:00Z"
        assert call["user_id"] == user["id"]  # the key's user, by default
        assert (call["deal_id"], call["version"]) == (deal["id"], 1)
        events = await client.get(f"/v1/events?resource_id={call['id']}", headers=tenant.headers)
        assert [e["type"] for e in events.json()["data"]] == ["interaction.created"]

    @pytest.mark.parametrize(
        ("fields", "loc"),
        [
            ({}, ["body", "contact_id"]),  # with nobody
            ({"channel": "fax"}, ["body", "channel"]),
            ({"direction": "sideways"}, ["body", "direction"]),
            ({"duration_seconds": -1}, ["body", "duration_seconds"]),
            ({"occurred_at": "yesterday"}, ["body", "occurred_at"]),
            ({"contact_id": str(uuid.uuid4())}, ["body", "contact_id"]),
            ({"company_id": str(uuid.uuid4())}, ["body", "company_id"]),
            ({"deal_id": str(uuid.uuid4()), "company_id": None}, ["body", "deal_id"]),
            ({"user_id": str(uuid.uuid4())}, ["body", "user_id"]),
        ],
    )
    async def test_invalid_input_is_422(
        self, client: AsyncClient, tenant: Tenant, fields: dict[str, Any], loc: list[Any]
    ) -> None:
        company = await create_company(client, tenant)
        body = {"channel": "call", **({"company_id": company["id"]} if fields else {}), **fields}
        response = await client.post("/v1/interactions", json=body, headers=tenant.headers)
        assert_problem(response, 422, loc=loc)
        assert (await client.get("/v1/interactions", headers=tenant.headers)).json()["data"] == []


class TestChange:
    async def test_patch_upsert_delete(self, client: AsyncClient, tenant: Tenant) -> None:
        contact = await create_contact(client, tenant)
        url = "/v1/interactions/external/MSG-1"
        body = {"channel": "email", "direction": "inbound", "contact_id": contact["id"]}
        made = await client.put(url, json=body, headers=tenant.headers)
        assert made.status_code == 201, made.text
        again = await client.put(url, json=body, headers=tenant.headers)
        assert (again.status_code, again.json()["version"]) == (200, 1)
        item_url = f"/v1/interactions/{made.json()['id']}"
        stale = {**tenant.headers, "If-Match": '"9"'}
        assert_problem(await client.patch(item_url, json={"subject": "x"}, headers=stale), 412)
        # Taking away its only party is refused, and changes nothing.
        response = await client.patch(item_url, json={"contact_id": None}, headers=tenant.headers)
        assert_problem(response, 422, loc=["body", "contact_id"])
        patched = await client.patch(
            item_url, json={"subject": "Re: quote"}, headers=tenant.headers
        )
        assert (patched.json()["subject"], patched.json()["version"]) == ("Re: quote", 2)
        assert (await client.delete(item_url, headers=tenant.headers)).status_code == 204
        assert_problem(await client.get(item_url, headers=tenant.headers), 404)

    async def test_batch(self, client: AsyncClient, tenant: Tenant) -> None:
        contact = await create_contact(client, tenant)
        items = [
            {"external_id": "M1", "channel": "sms", "contact_id": contact["id"]},
            {"external_id": "M2", "channel": "sms"},
        ]
        response = await client.post(
            "/v1/interactions/batch/upsert", json={"items": items}, headers=tenant.headers
        )
        results = response.json()["results"]
        assert [r["status"] for r in results] == ["created", "error"]
        assert results[1]["error"]["errors"][0]["loc"] == ["body", "items", 1, "contact_id"]

    async def test_history_stays_with_a_deleted_contact(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        contact = await create_contact(client, tenant)
        call = await record(client, tenant, contact_id=contact["id"])
        await client.delete(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
        got = await client.get(f"/v1/interactions/{call['id']}", headers=tenant.headers)
        assert (got.json()["contact_id"], got.json()["version"]) == (contact["id"], 1)


class TestList:
    async def test_newest_first_and_filters(self, client: AsyncClient, tenant: Tenant) -> None:
        contact = await create_contact(client, tenant)
        company = await create_company(client, tenant)
        old = await record(client, tenant, contact_id=contact["id"], occurred_at="2026-01-01")
        new = await record(
            client, tenant, channel="meeting", company_id=company["id"], occurred_at="2026-06-01"
        )
        note = await record(client, tenant, channel="note", contact_id=contact["id"])

        async def ids(query: str) -> list[str]:
            response = await client.get(f"/v1/interactions?{query}", headers=tenant.headers)
            assert response.status_code == 200, response.text
            return [i["id"] for i in response.json()["data"]]

        assert await ids("") == [note["id"], new["id"], old["id"]]
        assert await ids("sort=occurred_at") == [old["id"], new["id"], note["id"]]
        assert await ids(f"contact_id={contact['id']}") == [note["id"], old["id"]]
        assert await ids("channel=meeting") == [new["id"]]
        assert await ids("occurred_after=2026-02-01&occurred_before=2026-07-01") == [new["id"]]
        assert_problem(
            await client.get("/v1/interactions?sort=subject", headers=tenant.headers), 422
        )


class TestInteractionAuth:
    async def test_no_key_wrong_scope_other_workspace(
        self,
        client: AsyncClient,
        tenant: Tenant,
        other_tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        assert_problem(await client.get("/v1/interactions"), 401)
        reader = await create_key(sessionmaker, tenant, [Scope.interactions_read])
        response = await client.post(
            "/v1/interactions", json={"channel": "call"}, headers=reader.headers
        )
        assert_problem(response, 403)
        contacts_only = await create_key(sessionmaker, tenant, [Scope.contacts_read])
        assert_problem(await client.get("/v1/interactions", headers=contacts_only.headers), 403)
        their_contact = await create_contact(client, other_tenant)
        theirs = await record(client, other_tenant, contact_id=their_contact["id"])
        url = f"/v1/interactions/{theirs['id']}"
        for method, body in [("GET", None), ("PATCH", {"subject": "x"}), ("DELETE", None)]:
            response = await client.request(method, url, json=body, headers=tenant.headers)
            assert_problem(response, 404)
        response = await client.post(
            "/v1/interactions",
            json={"channel": "call", "contact_id": their_contact["id"]},
            headers=tenant.headers,
        )
        assert_problem(response, 422, loc=["body", "contact_id"])


async def test_what_an_interaction_always_has_cannot_be_cleared(
    client: AsyncClient, tenant: Tenant
) -> None:
    contact = await create_contact(client, tenant)
    call = await record(client, tenant, contact_id=contact["id"])
    url = f"/v1/interactions/{call['id']}"
    for field in ("channel", "occurred_at"):
        response = await client.patch(url, json={field: None}, headers=tenant.headers)
        assert_problem(response, 422, loc=["body", field])
    response = await client.put(
        "/v1/interactions/external/NEW", json={"contact_id": contact["id"]}, headers=tenant.headers
    )
    assert_problem(response, 422, loc=["body", "channel"])
    got = await client.get(url, headers=tenant.headers)
    assert got.json()["version"] == 1
