import asyncio
import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from tests.builders import Tenant, assert_problem, create_company, create_contact, create_key

LINES = [
    {"sku": "CHAIR-01", "name": "Office chair", "quantity": "2", "unit_price": "149.00"},
    {"sku": "DESK-02", "name": "Standing desk", "quantity": "1", "unit_price": "499.50"},
]


async def place(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"currency": "EUR", "lines": LINES, **fields}
    response = await client.post("/v1/orders", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def event_types(client: AsyncClient, tenant: Tenant, resource_id: str) -> list[str]:
    response = await client.get(f"/v1/events?resource_id={resource_id}", headers=tenant.headers)
    return [e["type"] for e in response.json()["data"]]


@pytest.fixture
async def contact(client: AsyncClient, tenant: Tenant) -> dict[str, Any]:
    return await create_contact(client, tenant)


class TestPlaceOrder:
    async def test_the_total_is_the_lines_unless_sent(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        order = await place(client, tenant, contact_id=contact["id"], order_number="SO-1")
        assert (order["total"], order["status"], order["paid_at"]) == ("797.50", "pending", None)
        assert [line["quantity"] for line in order["lines"]] == ["2", "1"]
        with_tax = await place(client, tenant, contact_id=contact["id"], total="949.03")
        assert with_tax["total"] == "949.03"
        assert await event_types(client, tenant, order["id"]) == ["order.created"]

    @pytest.mark.parametrize(
        ("fields", "loc"),
        [
            ({"contact_id": None}, ["body", "contact_id"]),
            ({"contact_id": str(uuid.uuid4())}, ["body", "contact_id"]),
            ({"company_id": str(uuid.uuid4())}, ["body", "company_id"]),
            ({"currency": "euro"}, ["body", "currency"]),
            ({"lines": [], "total": None}, ["body", "total"]),
            ({"lines": [{**LINES[0], "quantity": "0"}]}, ["body", "lines"]),
            ({"lines": [{**LINES[0], "unit_price": "-1"}]}, ["body", "lines", 0, "unit_price"]),
            ({"total": 12.5}, ["body", "total"]),
            ({"status": "shipped"}, ["body", "status"]),
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
        body = {"currency": "EUR", "lines": LINES, "contact_id": contact["id"], **fields}
        response = await client.post("/v1/orders", json=body, headers=tenant.headers)
        assert_problem(response, 422, loc=loc)

    async def test_an_order_number_is_unique(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        await place(client, tenant, contact_id=contact["id"], order_number="SO-9")
        response = await client.post(
            "/v1/orders",
            json={
                "contact_id": contact["id"],
                "currency": "EUR",
                "total": "5",
                "order_number": "SO-9",
            },
            headers=tenant.headers,
        )
        assert_problem(response, 409, loc=["body", "order_number"])


class TestStatus:
    async def test_paid_then_refunded_keeps_the_order_and_its_times(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        order = await place(client, tenant, contact_id=contact["id"])
        url = f"/v1/orders/{order['id']}"
        paid = (await client.patch(url, json={"status": "paid"}, headers=tenant.headers)).json()
        assert paid["paid_at"] is not None
        refunded = await client.patch(url, json={"status": "refunded"}, headers=tenant.headers)
        assert (refunded.json()["paid_at"], refunded.json()["total"]) == (paid["paid_at"], "797.50")
        assert refunded.json()["refunded_at"] is not None
        response = await client.patch(url, json={"status": "paid"}, headers=tenant.headers)
        assert assert_problem(response, 409)["allowed"] == []
        events = await client.get(
            f"/v1/events?resource_id={order['id']}&type=order.updated", headers=tenant.headers
        )
        assert [e["changes"]["status"] for e in events.json()["data"]] == [
            {"old": "pending", "new": "paid"},
            {"old": "paid", "new": "refunded"},
        ]

    async def test_a_cancelled_order_is_final(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        order = await place(client, tenant, contact_id=contact["id"], status="cancelled")
        assert order["cancelled_at"] is not None
        response = await client.patch(
            f"/v1/orders/{order['id']}", json={"status": "pending"}, headers=tenant.headers
        )
        assert_problem(response, 409)


class TestErpSync:
    async def test_a_replay_changes_nothing_and_announces_nothing(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        url = "/v1/orders/external/SAP-1"
        body = {"contact_id": contact["id"], "currency": "EUR", "lines": LINES, "status": "paid"}
        made = await client.put(url, json=body, headers=tenant.headers)
        assert made.status_code == 201, made.text
        # The same lines written differently ("2.00" for "2") are the same lines.
        same = {**body, "lines": [{**LINES[0], "quantity": "2.00"}, LINES[1]]}
        for replay in (body, same):
            again = await client.put(url, json=replay, headers=tenant.headers)
            assert (again.status_code, again.json()["version"]) == (200, 1)
        assert await event_types(client, tenant, made.json()["id"]) == ["order.created"]
        fewer = await client.put(url, json={**body, "lines": LINES[:1]}, headers=tenant.headers)
        assert (fewer.json()["total"], fewer.json()["version"]) == ("298.00", 2)
        events = await client.get(
            f"/v1/events?resource_id={made.json()['id']}&type=order.updated", headers=tenant.headers
        )
        [change] = [e["changes"] for e in events.json()["data"]]
        assert change["total"] == {"old": "797.50", "new": "298.00"}
        assert len(change["lines"]["new"]) == 1

    async def test_batch(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        items = [
            {"external_id": "SAP-1", "contact_id": contact["id"], "currency": "EUR", "total": "10"},
            {"external_id": "SAP-2", "contact_id": contact["id"], "total": "10"},
            {"external_id": "SAP-1", "total": "11"},
        ]
        response = await client.post(
            "/v1/orders/batch/upsert", json={"items": items}, headers=tenant.headers
        )
        results = response.json()["results"]
        assert [r["status"] for r in results] == ["created", "error", "error"]
        assert results[1]["error"]["errors"][0]["loc"] == ["body", "items", 1, "currency"]
        replay = await client.post(
            "/v1/orders/batch/upsert", json={"items": items[:1]}, headers=tenant.headers
        )
        assert replay.json()["results"][0]["status"] == "unchanged"

    async def test_racing_pushes_of_one_new_order_make_one(
        self, live_client: AsyncClient, live_tenant: Tenant
    ) -> None:
        contact = await create_contact(live_client, live_tenant)
        body = {"contact_id": contact["id"], "currency": "EUR", "lines": LINES}
        responses = await asyncio.gather(
            *(
                live_client.put(
                    "/v1/orders/external/SAP-RACE", json=body, headers=live_tenant.headers
                )
                for _ in range(6)
            )
        )
        assert sorted(r.status_code for r in responses) == [200] * 5 + [201]
        assert len({r.json()["id"] for r in responses}) == 1


class TestList:
    async def test_filters_and_the_timeline(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        company = await create_company(client, tenant)
        old = await place(client, tenant, contact_id=contact["id"], ordered_at="2026-01-01")
        new = await place(
            client, tenant, contact_id=contact["id"], company_id=company["id"], status="paid"
        )

        async def ids(query: str) -> list[str]:
            response = await client.get(f"/v1/orders?{query}", headers=tenant.headers)
            assert response.status_code == 200, response.text
            return [o["id"] for o in response.json()["data"]]

        assert await ids("") == [new["id"], old["id"]]
        assert await ids("status=paid") == [new["id"]]
        assert await ids(f"company_id={company['id']}") == [new["id"]]
        assert await ids("ordered_before=2026-02-01") == [old["id"]]
        assert await ids("sort=total") == [old["id"], new["id"]]
        timeline = await client.get(
            f"/v1/contacts/{contact['id']}/timeline?kind=order", headers=tenant.headers
        )
        entries = timeline.json()["data"]
        assert [(e["kind"], e["id"]) for e in entries] == [
            ("order", new["id"]),
            ("order", old["id"]),
        ]
        assert entries[0]["order"]["total"] == "797.50"


class TestOrderAuth:
    async def test_no_key_wrong_scope_other_workspace(
        self,
        client: AsyncClient,
        tenant: Tenant,
        other_tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        assert_problem(await client.get("/v1/orders"), 401)
        reader = await create_key(sessionmaker, tenant, [Scope.orders_read])
        response = await client.post("/v1/orders", json={}, headers=reader.headers)
        assert_problem(response, 403)
        contacts_only = await create_key(sessionmaker, tenant, [Scope.contacts_write])
        assert_problem(await client.get("/v1/orders", headers=contacts_only.headers), 403)
        their_contact = await create_contact(client, other_tenant)
        theirs = await place(client, other_tenant, contact_id=their_contact["id"], external_id="X")
        url = f"/v1/orders/{theirs['id']}"
        for method, body in [("GET", None), ("PATCH", {"status": "paid"}), ("DELETE", None)]:
            response = await client.request(method, url, json=body, headers=tenant.headers)
            assert_problem(response, 404)
        assert_problem(await client.get("/v1/orders/external/X", headers=tenant.headers), 404)


class TestChangeAndDelete:
    async def test_if_match_nulls_and_delete(
        self, client: AsyncClient, tenant: Tenant, contact: dict[str, Any]
    ) -> None:
        order = await place(client, tenant, contact_id=contact["id"], external_id="SAP-D")
        url = f"/v1/orders/{order['id']}"
        stale = {**tenant.headers, "If-Match": '"5"'}
        assert_problem(await client.patch(url, json={"status": "paid"}, headers=stale), 412)
        for field in ("status", "currency", "total", "contact_id", "ordered_at"):
            response = await client.patch(url, json={field: None}, headers=tenant.headers)
            assert_problem(response, 422, loc=["body", field])
        got = await client.get(url, headers=tenant.headers)
        assert (got.json()["version"], got.json()["status"]) == (1, "pending")
        current = {**tenant.headers, "If-Match": '"1"'}
        assert (await client.delete(url, headers=current)).status_code == 204
        assert_problem(await client.get(url, headers=tenant.headers), 404)
        assert_problem(await client.get("/v1/orders/external/SAP-D", headers=tenant.headers), 404)
        assert await event_types(client, tenant, order["id"]) == ["order.created", "order.deleted"]
        # Its external id is free again.
        again = await place(client, tenant, contact_id=contact["id"], external_id="SAP-D")
        assert again["id"] != order["id"]
