import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from crm_api.segments.service import refresh_due_segments, refresh_stale_members
from tests.builders import (
    Tenant,
    assert_problem,
    create_company,
    create_contact,
    create_key,
    create_ticket,
    define_custom_field,
)

CUSTOMERS = {"field": "lifecycle_stage", "op": "eq", "value": "customer"}


async def create_segment(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"name": "Customers", "kind": "dynamic", "filter": CUSTOMERS, **fields}
    response = await client.post("/v1/segments", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def members(client: AsyncClient, tenant: Tenant, segment: dict[str, Any]) -> list[str]:
    url = f"/v1/segments/{segment['id']}/members?limit=500"
    response = await client.get(url, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return sorted(c["email"] for c in response.json()["data"])


async def member_count(client: AsyncClient, tenant: Tenant, segment: dict[str, Any]) -> int:
    response = await client.get(f"/v1/segments/{segment['id']}", headers=tenant.headers)
    return int(response.json()["member_count"])


async def run_worker(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """What the worker's segment task does in a round, until the queue is empty."""
    done = 0
    while True:
        async with sessionmaker() as session, session.begin():
            step = await refresh_stale_members(session, datetime.now(UTC))
        if not step:
            return done
        done += step


async def member_events(client: AsyncClient, tenant: Tenant) -> list[tuple[str, str]]:
    response = await client.get(
        "/v1/events?type=segment.member_added,segment.member_removed&limit=500",
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    return [(e["type"].partition(".")[2], e["data"]["contact_id"]) for e in response.json()["data"]]


async def patch(client: AsyncClient, tenant: Tenant, path: str, **fields: Any) -> dict[str, Any]:
    response = await client.patch(path, json=fields, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


class TestDynamic:
    async def test_evaluated_at_creation_without_announcing_each_member(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        ada = await create_contact(client, tenant, email="ada@x.com", lifecycle_stage="customer")
        await create_contact(client, tenant, email="bob@x.com", lifecycle_stage="lead")
        segment = await create_segment(client, tenant)
        assert segment["member_count"] == 1
        assert segment["refreshed_at"] is not None
        assert segment["filter"] == {"field": "lifecycle_stage", "op": "eq", "value": "customer"}
        assert await members(client, tenant, segment) == ["ada@x.com"]
        assert await member_events(client, tenant) == []
        of_ada = await client.get(f"/v1/contacts/{ada['id']}/segments", headers=tenant.headers)
        assert [s["id"] for s in of_ada.json()["data"]] == [segment["id"]]

    async def test_contacts_join_and_leave_as_they_change(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
    ) -> None:
        segment = await create_segment(client, tenant)
        ada = await create_contact(client, tenant, email="ada@x.com", lifecycle_stage="lead")
        await run_worker(sessionmaker)
        assert await member_count(client, tenant, segment) == 0
        await patch(client, tenant, f"/v1/contacts/{ada['id']}", lifecycle_stage="customer")
        assert await run_worker(sessionmaker) == 1
        assert await members(client, tenant, segment) == ["ada@x.com"]
        await patch(client, tenant, f"/v1/contacts/{ada['id']}", lifecycle_stage="churned")
        await run_worker(sessionmaker)
        assert await member_count(client, tenant, segment) == 0
        assert await member_events(client, tenant) == [
            ("member_added", ada["id"]),
            ("member_removed", ada["id"]),
        ]

    async def test_orders_feedback_and_tickets_move_metrics_and_members(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
    ) -> None:
        ada = await create_contact(client, tenant, email="ada@x.com")
        spenders = await create_segment(
            client, tenant, name="Spenders",
            filter={"all": [
                {"field": "metrics.total_spent", "op": "gte", "value": "500"},
                {"field": "metrics.open_ticket_count", "op": "eq", "value": 0},
            ]},
        )  # fmt: skip
        order = await client.post(
            "/v1/orders",
            json={"contact_id": ada["id"], "currency": "EUR", "total": "650.00", "status": "paid",
                  "lines": [{"name": "Desk", "quantity": "1", "unit_price": "650.00"}]},
            headers=tenant.headers,
        )  # fmt: skip
        assert order.status_code == 201, order.text
        await run_worker(sessionmaker)
        assert await members(client, tenant, spenders) == ["ada@x.com"]
        ticket = await create_ticket(client, tenant, ada["id"])
        await run_worker(sessionmaker)
        assert await members(client, tenant, spenders) == []
        await patch(client, tenant, f"/v1/tickets/{ticket['id']}", status="resolved")
        await run_worker(sessionmaker)
        assert await members(client, tenant, spenders) == ["ada@x.com"]
        await patch(client, tenant, f"/v1/orders/{order.json()['id']}", status="refunded")
        await run_worker(sessionmaker)
        assert await members(client, tenant, spenders) == []
        search = await client.post(
            "/v1/contacts/search",
            json={"filter": {"field": "metrics.order_count", "op": "eq", "value": 0}},
            headers=tenant.headers,
        )
        assert [c["id"] for c in search.json()["data"]] == [ada["id"]]

    async def test_a_company_change_moves_its_contacts(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
    ) -> None:
        acme = await create_company(client, tenant, industry="Retail")
        await create_contact(client, tenant, email="ada@x.com", company_id=acme["id"])
        software = await create_segment(
            client, tenant, filter={"field": "company.industry", "op": "eq", "value": "Software"}
        )
        await patch(client, tenant, f"/v1/companies/{acme['id']}", industry="Software")
        await run_worker(sessionmaker)
        assert await members(client, tenant, software) == ["ada@x.com"]

    async def test_a_new_filter_reevaluates_and_announces(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        ada = await create_contact(client, tenant, email="ada@x.com", lifecycle_stage="customer")
        bob = await create_contact(client, tenant, email="bob@x.com", lifecycle_stage="lead")
        segment = await create_segment(client, tenant)
        leads = {"field": "lifecycle_stage", "op": "eq", "value": "lead"}
        updated = await patch(client, tenant, f"/v1/segments/{segment['id']}", filter=leads)
        assert (updated["member_count"], updated["version"]) == (1, 2)
        assert sorted(await member_events(client, tenant)) == [
            ("member_added", bob["id"]),
            ("member_removed", ada["id"]),
        ]

    async def test_a_deleted_custom_field_is_reported_not_fatal(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
    ) -> None:
        tier = await define_custom_field(client, tenant, "contacts", "tier")
        await create_contact(client, tenant, email="ada@x.com", custom_fields={"tier": "gold"})
        segment = await create_segment(
            client, tenant, filter={"field": "custom_fields.tier", "op": "eq", "value": "gold"}
        )
        assert segment["member_count"] == 1
        await client.delete(f"/v1/custom-fields/{tier['id']}", headers=tenant.headers)
        async with sessionmaker() as session, session.begin():
            later = datetime.now(UTC) + timedelta(hours=2)
            while await refresh_due_segments(session, later):
                pass
        got = (await client.get(f"/v1/segments/{segment['id']}", headers=tenant.headers)).json()
        assert "tier" in got["refresh_error"]
        assert got["member_count"] == 1


class TestStatic:
    async def test_members_are_added_and_removed_by_hand(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
    ) -> None:
        ada = await create_contact(client, tenant, email="ada@x.com")
        bob = await create_contact(client, tenant, email="bob@x.com")
        segment = await create_segment(
            client, tenant, kind="static", filter=None, contact_ids=[ada["id"]]
        )
        assert segment["member_count"] == 1
        url = f"/v1/segments/{segment['id']}/members"
        added = await client.post(
            url, json={"contact_ids": [ada["id"], bob["id"]]}, headers=tenant.headers
        )
        assert added.json() == {"changed": 1, "member_count": 2}
        removed = await client.post(
            f"{url}/remove", json={"contact_ids": [ada["id"]]}, headers=tenant.headers
        )
        assert removed.json() == {"changed": 1, "member_count": 1}
        assert await member_events(client, tenant) == [
            ("member_added", bob["id"]),
            ("member_removed", ada["id"]),
        ]
        # A contact that is deleted leaves; one that changes stays.
        await patch(client, tenant, f"/v1/contacts/{bob['id']}", lifecycle_stage="lead")
        await run_worker(sessionmaker)
        assert await members(client, tenant, segment) == ["bob@x.com"]
        await client.delete(f"/v1/contacts/{bob['id']}", headers=tenant.headers)
        await run_worker(sessionmaker)
        assert await member_count(client, tenant, segment) == 0

    async def test_the_survivor_of_a_merge_takes_a_merged_contacts_place(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
    ) -> None:
        ada = await create_contact(client, tenant, email="ada@x.com", lifecycle_stage="customer")
        dupe = await create_contact(client, tenant, email="ada@y.com", lifecycle_stage="customer")
        other = await create_contact(client, tenant, email="cy@x.com")
        static = await create_segment(
            client, tenant, kind="static", filter=None, contact_ids=[dupe["id"], other["id"]]
        )
        dynamic = await create_segment(client, tenant)
        assert await members(client, tenant, dynamic) == ["ada@x.com", "ada@y.com"]
        headers = {**tenant.headers, "If-Match": f'"{ada["version"]}"'}
        url = f"/v1/contacts/{ada['id']}/merge"
        dry = await client.post(url, json={"merge_ids": [dupe["id"]], "dry_run": True},
                                headers=headers)  # fmt: skip
        assert dry.json()["moved"]["segments"] == 1
        assert await members(client, tenant, static) == ["ada@y.com", "cy@x.com"]
        assert await member_events(client, tenant) == []
        merged = await client.post(url, json={"merge_ids": [dupe["id"]]}, headers=headers)
        assert merged.status_code == 200, merged.text
        assert merged.json()["moved"]["segments"] == 1
        assert await members(client, tenant, static) == ["ada@x.com", "cy@x.com"]
        assert await member_count(client, tenant, static) == 2
        assert await members(client, tenant, dynamic) == ["ada@x.com"]
        assert await member_count(client, tenant, dynamic) == 1
        assert sorted(await member_events(client, tenant)) == [
            ("member_added", ada["id"]),
            ("member_removed", dupe["id"]),
            ("member_removed", dupe["id"]),
        ]
        await run_worker(sessionmaker)  # the survivor, looked at again, stays where it was
        assert await members(client, tenant, dynamic) == ["ada@x.com"]
        assert await members(client, tenant, static) == ["ada@x.com", "cy@x.com"]

    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({"kind": "static", "filter": CUSTOMERS}, ["body", "filter"]),
            ({"kind": "dynamic", "filter": None}, ["body", "filter"]),
            ({"kind": "dynamic", "contact_ids": []}, ["body", "contact_ids"]),
            ({"filter": {"field": "metrics.nope", "op": "eq", "value": 1}}, ["body", "filter"]),
            ({"kind": "static", "filter": None, "contact_ids": [CUSTOMERS["field"]]}, ["body"]),
        ],
    )
    async def test_bad_segments_are_422(
        self, client: AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[str]
    ) -> None:
        full = {"name": "S", "kind": "dynamic", "filter": CUSTOMERS, **body}
        response = await client.post("/v1/segments", json=full, headers=tenant.headers)
        assert_problem(response, 422, loc=loc)

    async def test_unknown_contacts_and_dynamic_members_are_refused(
        self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        stranger = await create_contact(client, other_tenant)
        static = await create_segment(client, tenant, kind="static", filter=None)
        url = f"/v1/segments/{static['id']}/members"
        response = await client.post(
            url, json={"contact_ids": [stranger["id"]]}, headers=tenant.headers
        )
        assert_problem(response, 422, loc=["body", "contact_ids", 0])
        dynamic = await create_segment(client, tenant)
        ada = await create_contact(client, tenant)
        response = await client.post(
            f"/v1/segments/{dynamic['id']}/members",
            json={"contact_ids": [ada["id"]]},
            headers=tenant.headers,
        )
        assert_problem(response, 409)
        refresh = await client.post(f"/v1/segments/{static['id']}/refresh", headers=tenant.headers)
        assert_problem(refresh, 409)


class TestPreview:
    async def test_counts_and_lists_without_saving(
        self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        for i in range(3):
            await create_contact(client, tenant, email=f"c{i}@x.com", lifecycle_stage="customer")
        await create_contact(client, other_tenant, lifecycle_stage="customer")
        response = await client.post(
            "/v1/segments/preview", json={"filter": CUSTOMERS, "limit": 2}, headers=tenant.headers
        )
        body = response.json()
        assert body["count"] == 3
        assert [c["email"] for c in body["data"]] == ["c0@x.com", "c1@x.com"]
        listed = await client.get("/v1/segments", headers=tenant.headers)
        assert listed.json()["data"] == []


async def test_auth_and_other_workspaces(
    client: AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    segment = await create_segment(client, tenant)
    url = f"/v1/segments/{segment['id']}"
    assert_problem(await client.get(url), 401)
    reader = await create_key(sessionmaker, tenant, [Scope.segments_read])
    assert (await client.get(url, headers=reader.headers)).status_code == 200
    assert_problem(await client.patch(url, json={"name": "x"}, headers=reader.headers), 403)
    assert_problem(await client.post("/v1/segments", json={}, headers=reader.headers), 403)
    for method, path in (
        ("GET", url),
        ("GET", f"{url}/members"),
        ("PATCH", url),
        ("DELETE", url),
        ("POST", f"{url}/refresh"),
    ):
        body = {"name": "x"} if method == "PATCH" else None
        response = await client.request(method, path, json=body, headers=other_tenant.headers)
        assert_problem(response, 404)
    stale = await client.patch(
        url, json={"name": "x"}, headers={**tenant.headers, "If-Match": '"7"'}
    )
    assert_problem(stale, 412)
    deleted = await client.delete(url, headers=tenant.headers)
    assert deleted.status_code == 204
    assert_problem(await client.get(f"{url}/members", headers=tenant.headers), 404)


async def test_concurrent_additions_count_each_member_once(
    live_client: AsyncClient, live_tenant: Tenant
) -> None:
    contacts = [await create_contact(live_client, live_tenant) for _ in range(6)]
    segment = await create_segment(live_client, live_tenant, kind="static", filter=None)
    url = f"/v1/segments/{segment['id']}/members"
    batches = [[c["id"] for c in contacts[i : i + 4]] for i in range(0, 6, 2)]
    responses = await asyncio.gather(
        *(
            live_client.post(url, json={"contact_ids": ids}, headers=live_tenant.headers)
            for ids in batches
        )
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert sum(r.json()["changed"] for r in responses) == 6
    assert await member_count(live_client, live_tenant, segment) == 6
