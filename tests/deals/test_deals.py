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
    define_custom_field,
)


async def history(client: AsyncClient, tenant: Tenant, deal_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/deals/{deal_id}/stage-history", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def event_types(client: AsyncClient, tenant: Tenant, deal_id: str) -> list[str]:
    response = await client.get(
        f"/v1/events?resource_id={deal_id}&limit=100", headers=tenant.headers
    )
    return [event["type"] for event in response.json()["data"]]


class TestCreateDeal:
    async def test_in_a_stage(self, client: AsyncClient, tenant: Tenant) -> None:
        pipeline = await create_pipeline(client, tenant)
        company = await create_company(client, tenant)
        await define_custom_field(client, tenant, "deals", "seats", "number")
        contacts = [
            await create_contact(client, tenant, email=f"{i}@example.com") for i in range(2)
        ]
        response = await client.post(
            "/v1/deals",
            json={
                "name": "Acme: 200 seats",
                "stage_id": pipeline["stages"][1]["id"],
                "amount": "24000.50",
                "currency": "EUR",
                "expected_close_date": "2026-12-15",
                "company_id": company["id"],
                "contact_ids": [contacts[1]["id"], contacts[0]["id"]],
                "source": "referral",
                "tags": ["q4"],
                "custom_fields": {"seats": 200},
                "external_id": "OPP-1",
            },
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
        deal = response.json()
        assert deal["pipeline_id"] == pipeline["id"]
        assert (deal["status"], deal["amount"], deal["closed_at"]) == ("open", "24000.50", None)
        assert deal["contact_ids"] == sorted(c["id"] for c in contacts)
        assert response.headers["location"].endswith(f"/v1/deals/{deal['id']}")
        [created] = await history(client, tenant, deal["id"])
        assert (created["from_stage_id"], created["to_stage_id"]) == (None, deal["stage_id"])
        assert await event_types(client, tenant, deal["id"]) == ["deal.created"]

    async def test_a_pipeline_alone_means_its_first_stage(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        pipeline = await create_pipeline(client, tenant)
        response = await client.post(
            "/v1/deals", json={"name": "D", "pipeline_id": pipeline["id"]}, headers=tenant.headers
        )
        assert response.json()["stage_id"] == pipeline["stages"][0]["id"]

    async def test_created_straight_into_won_is_closed(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        pipeline = await create_pipeline(client, tenant)
        deal = await create_deal(
            client, tenant, pipeline["stages"][2]["id"], closed_at="2025-03-01T10:00:00Z"
        )
        assert (deal["status"], deal["closed_at"]) == ("won", "2025-03-01T10:00:00Z")

    async def test_a_key_acting_as_a_user_owns_what_it_creates(
        self, client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        pipeline = await create_pipeline(client, tenant)
        user = await create_user(client, tenant)
        key = await create_key(sessionmaker, tenant, [Scope.deals_write], user_id=user["id"])
        deal = await create_deal(client, key, pipeline["stages"][0]["id"])
        assert deal["owner_id"] == user["id"]
        unowned = await create_deal(client, key, pipeline["stages"][0]["id"], owner_id=None)
        assert unowned["owner_id"] is None
        [entry] = await history(client, tenant, deal["id"])
        assert entry["user_id"] == user["id"]

    async def test_an_owner_of_deals_is_kept_until_they_are_given_away(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        pipeline = await create_pipeline(client, tenant)
        user = await create_user(client, tenant)
        deal = await create_deal(client, tenant, pipeline["stages"][0]["id"], owner_id=user["id"])
        response = await client.delete(f"/v1/users/{user['id']}", headers=tenant.headers)
        assert assert_problem(response, 409)["owned"] == {"deals": 1}
        await client.patch(
            f"/v1/users/{user['id']}", json={"active": False}, headers=tenant.headers
        )
        response = await client.post(
            "/v1/deals",
            json={"name": "D", "pipeline_id": pipeline["id"], "owner_id": user["id"]},
            headers=tenant.headers,
        )
        assert_problem(response, 422, loc=["body", "owner_id"])
        response = await client.patch(
            f"/v1/deals/{deal['id']}", json={"owner_id": None}, headers=tenant.headers
        )
        assert response.json()["owner_id"] is None
        response = await client.delete(f"/v1/users/{user['id']}", headers=tenant.headers)
        assert response.status_code == 204

    @pytest.mark.parametrize(
        ("fields", "loc"),
        [
            ({"stage_id": None}, ["body", "stage_id"]),
            ({"stage_id": str(uuid.uuid4())}, ["body", "stage_id"]),
            ({"amount": "100"}, ["body", "currency"]),
            ({"amount": 100, "currency": "EUR"}, ["body", "amount"]),
            ({"amount": "1.23456", "currency": "EUR"}, ["body", "amount"]),
            ({"amount": "-5", "currency": "EUR"}, ["body", "amount"]),
            ({"amount": "5", "currency": "eur"}, ["body", "currency"]),
            ({"contact_ids": [str(uuid.uuid4())]}, ["body", "contact_ids", 0]),
            ({"company_id": str(uuid.uuid4())}, ["body", "company_id"]),
            ({"owner_id": str(uuid.uuid4())}, ["body", "owner_id"]),
            ({"closed_at": "2026-01-01T00:00:00Z"}, ["body", "closed_at"]),
            ({"expected_close_date": "soon"}, ["body", "expected_close_date"]),
            ({"probability": 50}, ["body", "probability"]),
        ],
    )
    async def test_invalid_input_is_422(
        self, client: AsyncClient, tenant: Tenant, fields: dict[str, Any], loc: list[Any]
    ) -> None:
        pipeline = await create_pipeline(client, tenant)
        body = {"name": "D", "stage_id": pipeline["stages"][0]["id"], **fields}
        response = await client.post("/v1/deals", json=body, headers=tenant.headers)
        assert_problem(response, 422, loc=loc)

    async def test_neither_stage_nor_pipeline_means_the_default_pipeline(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        response = await client.post("/v1/deals", json={"name": "D"}, headers=tenant.headers)
        assert_problem(response, 422, loc=["body", "stage_id"])  # no pipeline yet
        first = await create_pipeline(client, tenant)
        await create_pipeline(client, tenant, name="Later")
        response = await client.post("/v1/deals", json={"name": "D"}, headers=tenant.headers)
        assert response.json()["stage_id"] == first["stages"][0]["id"]
        empty = await create_pipeline(client, tenant, name="Empty", stages=[])
        for pipeline_id in (empty["id"], str(uuid.uuid4())):
            response = await client.post(
                "/v1/deals", json={"name": "D", "pipeline_id": pipeline_id}, headers=tenant.headers
            )
            assert_problem(response, 422, loc=["body", "pipeline_id"])

    async def test_a_stage_of_another_pipeline_is_422(
        self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        first, second = await create_pipeline(client, tenant), await create_pipeline(client, tenant)
        body = {"name": "D", "pipeline_id": first["id"], "stage_id": second["stages"][0]["id"]}
        response = await client.post("/v1/deals", json=body, headers=tenant.headers)
        assert_problem(response, 422, loc=["body", "stage_id"])
        theirs = await create_pipeline(client, other_tenant)
        body = {"name": "D", "stage_id": theirs["stages"][0]["id"]}
        response = await client.post("/v1/deals", json=body, headers=tenant.headers)
        assert_problem(response, 422, loc=["body", "stage_id"])

    async def test_idempotent_create(self, client: AsyncClient, tenant: Tenant) -> None:
        pipeline = await create_pipeline(client, tenant)
        body = {"name": "D", "stage_id": pipeline["stages"][0]["id"]}
        headers = {**tenant.headers, "Idempotency-Key": "deal-1"}
        first = await client.post("/v1/deals", json=body, headers=headers)
        again = await client.post("/v1/deals", json=body, headers=headers)
        assert again.json()["id"] == first.json()["id"]
        listed = await client.get("/v1/deals", headers=tenant.headers)
        assert len(listed.json()["data"]) == 1


class TestMoves:
    async def test_moves_are_recorded_and_announced(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        pipeline = await create_pipeline(client, tenant)
        qualified, proposal, won, lost = (s["id"] for s in pipeline["stages"])
        deal = await create_deal(client, tenant, qualified)
        url = f"/v1/deals/{deal['id']}"

        moved = (
            await client.patch(url, json={"stage_id": proposal}, headers=tenant.headers)
        ).json()
        assert (moved["stage_id"], moved["status"], moved["version"]) == (proposal, "open", 2)
        assert moved["stage_entered_at"] > deal["stage_entered_at"]

        closed = (await client.patch(url, json={"stage_id": won}, headers=tenant.headers)).json()
        assert closed["status"] == "won"
        assert closed["closed_at"] is not None

        reopened = (
            await client.patch(url, json={"stage_id": proposal}, headers=tenant.headers)
        ).json()
        assert (reopened["status"], reopened["closed_at"]) == ("open", None)

        lost_deal = await client.patch(
            url, json={"stage_id": lost, "lost_reason": "Budget"}, headers=tenant.headers
        )
        assert (lost_deal.json()["status"], lost_deal.json()["lost_reason"]) == ("lost", "Budget")

        entries = await history(client, tenant, deal["id"])
        assert [(e["from_stage_id"], e["to_stage_id"]) for e in entries] == [
            (None, qualified),
            (qualified, proposal),
            (proposal, won),
            (won, proposal),
            (proposal, lost),
        ]
        assert all(e["api_key_id"] is not None for e in entries)
        newest = await client.get(
            f"{url}/stage-history?sort=-changed_at&limit=2", headers=tenant.headers
        )
        assert [e["to_stage_id"] for e in newest.json()["data"]] == [lost, proposal]
        assert newest.json()["next_cursor"] is not None

        assert await event_types(client, tenant, deal["id"]) == [
            "deal.created",
            *["deal.updated", "deal.stage_changed"],
            *["deal.updated", "deal.stage_changed", "deal.won"],
            *["deal.updated", "deal.stage_changed"],
            *["deal.updated", "deal.stage_changed", "deal.lost"],
        ]
        feed = await client.get(
            f"/v1/events?resource_id={deal['id']}&type=deal.won", headers=tenant.headers
        )
        [won_event] = feed.json()["data"]
        assert won_event["changes"]["stage_id"] == {"old": proposal, "new": won}
        assert won_event["changes"]["status"] == {"old": "open", "new": "won"}

    async def test_staying_put_changes_nothing(self, client: AsyncClient, tenant: Tenant) -> None:
        pipeline = await create_pipeline(client, tenant)
        deal = await create_deal(client, tenant, pipeline["stages"][0]["id"])
        response = await client.patch(
            f"/v1/deals/{deal['id']}",
            json={"stage_id": deal["stage_id"], "pipeline_id": deal["pipeline_id"]},
            headers=tenant.headers,
        )
        assert response.json()["version"] == 1
        assert len(await history(client, tenant, deal["id"])) == 1
        assert await event_types(client, tenant, deal["id"]) == ["deal.created"]

    async def test_moving_to_another_pipeline(self, client: AsyncClient, tenant: Tenant) -> None:
        first, second = await create_pipeline(client, tenant), await create_pipeline(client, tenant)
        deal = await create_deal(client, tenant, first["stages"][0]["id"])
        url = f"/v1/deals/{deal['id']}"
        target = second["stages"][1]["id"]
        response = await client.patch(url, json={"stage_id": target}, headers=tenant.headers)
        assert_problem(response, 422, loc=["body", "stage_id"])
        response = await client.patch(
            url, json={"pipeline_id": second["id"]}, headers=tenant.headers
        )
        assert_problem(response, 422, loc=["body", "stage_id"])
        response = await client.patch(
            url, json={"pipeline_id": second["id"], "stage_id": target}, headers=tenant.headers
        )
        assert response.status_code == 200, response.text
        assert (response.json()["pipeline_id"], response.json()["stage_id"]) == (
            second["id"],
            target,
        )
        last = (await history(client, tenant, deal["id"]))[-1]
        assert (last["from_pipeline_id"], last["to_pipeline_id"]) == (first["id"], second["id"])

    async def test_closed_at_only_for_closed_deals(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        pipeline = await create_pipeline(client, tenant)
        deal = await create_deal(client, tenant, pipeline["stages"][0]["id"])
        url = f"/v1/deals/{deal['id']}"
        response = await client.patch(
            url, json={"closed_at": "2026-01-05T00:00:00Z"}, headers=tenant.headers
        )
        assert_problem(response, 422, loc=["body", "closed_at"])
        response = await client.patch(
            url,
            json={"stage_id": pipeline["stages"][2]["id"], "closed_at": "2026-01-05T00:00:00Z"},
            headers=tenant.headers,
        )
        assert response.json()["closed_at"] == "2026-01-05T00:00:00Z"


class TestUpdateAndDelete:
    async def test_if_match_and_if_none_match(self, client: AsyncClient, tenant: Tenant) -> None:
        pipeline = await create_pipeline(client, tenant)
        deal = await create_deal(client, tenant, pipeline["stages"][0]["id"])
        url = f"/v1/deals/{deal['id']}"
        ok = await client.patch(
            url,
            json={"amount": "10", "currency": "USD"},
            headers={**tenant.headers, "If-Match": '"1"'},
        )
        assert (ok.json()["amount"], ok.headers["etag"]) == ("10", '"2"')
        stale = await client.patch(
            url, json={"amount": "20"}, headers={**tenant.headers, "If-Match": '"1"'}
        )
        assert_problem(stale, 412)
        cached = await client.get(url, headers={**tenant.headers, "If-None-Match": '"2"'})
        assert cached.status_code == 304
        cleared = await client.patch(url, json={"currency": None}, headers=tenant.headers)
        assert_problem(cleared, 422, loc=["body", "currency"])
        assert_problem(await client.delete(url, headers={**tenant.headers, "If-Match": '"1"'}), 412)
        assert (await client.delete(url, headers=tenant.headers)).status_code == 204
        assert_problem(await client.get(url, headers=tenant.headers), 404)
        assert await event_types(client, tenant, deal["id"]) == [
            "deal.created",
            "deal.updated",
            "deal.deleted",
        ]

    async def test_contacts_replace(self, client: AsyncClient, tenant: Tenant) -> None:
        pipeline = await create_pipeline(client, tenant)
        a = await create_contact(client, tenant, email="a@example.com")
        b = await create_contact(client, tenant, email="b@example.com")
        deal = await create_deal(client, tenant, pipeline["stages"][0]["id"], contact_ids=[a["id"]])
        url = f"/v1/deals/{deal['id']}"
        response = await client.patch(
            url, json={"contact_ids": [b["id"], b["id"]]}, headers=tenant.headers
        )
        assert (response.json()["contact_ids"], response.json()["version"]) == ([b["id"]], 2)
        response = await client.patch(url, json={"contact_ids": None}, headers=tenant.headers)
        assert response.json()["contact_ids"] == []

    async def test_deleting_a_company_or_contact_unlinks_their_deals(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        pipeline = await create_pipeline(client, tenant)
        company = await create_company(client, tenant)
        a = await create_contact(client, tenant, email="a@example.com")
        b = await create_contact(client, tenant, email="b@example.com")
        deal = await create_deal(
            client,
            tenant,
            pipeline["stages"][0]["id"],
            company_id=company["id"],
            contact_ids=[a["id"], b["id"]],
        )
        await client.delete(f"/v1/companies/{company['id']}", headers=tenant.headers)
        await client.delete(f"/v1/contacts/{a['id']}", headers=tenant.headers)
        after = (await client.get(f"/v1/deals/{deal['id']}", headers=tenant.headers)).json()
        assert (after["company_id"], after["contact_ids"], after["version"]) == (None, [b["id"]], 3)
        feed = await client.get(
            f"/v1/events?resource_id={deal['id']}&type=deal.updated", headers=tenant.headers
        )
        assert [e["changes"] for e in feed.json()["data"]] == [
            {"company_id": {"old": company["id"], "new": None}},
            {"contact_ids": {"old": sorted([a["id"], b["id"]]), "new": [b["id"]]}},
        ]
        assert [e["data"]["version"] for e in feed.json()["data"]] == [2, 3]


class TestUpsert:
    async def test_create_replay_update(self, client: AsyncClient, tenant: Tenant) -> None:
        pipeline = await create_pipeline(client, tenant)
        url = "/v1/deals/external/OPP-9"
        body = {"name": "D", "pipeline_id": pipeline["id"], "amount": "5", "currency": "EUR"}
        assert_problem(await client.put(url, json={"amount": "5"}, headers=tenant.headers), 422)
        made = await client.put(url, json=body, headers=tenant.headers)
        assert made.status_code == 201, made.text
        replay = await client.put(url, json=body, headers=tenant.headers)
        assert (replay.status_code, replay.json()["version"]) == (200, 1)
        moved = await client.put(
            url, json={"stage_id": pipeline["stages"][2]["id"]}, headers=tenant.headers
        )
        assert (moved.json()["status"], moved.json()["version"]) == ("won", 2)
        deal_id = made.json()["id"]
        assert await event_types(client, tenant, deal_id) == [
            "deal.created",
            "deal.updated",
            "deal.stage_changed",
            "deal.won",
        ]
        got = await client.get(url, headers=tenant.headers)
        assert got.json()["id"] == deal_id

    async def test_batch_applies_the_good_items_and_reports_the_bad(
        self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        pipeline = await create_pipeline(client, tenant)
        qualified, proposal, won, _ = (stage["id"] for stage in pipeline["stages"])
        theirs = await create_pipeline(client, other_tenant)
        existing = await create_deal(
            client, tenant, qualified, external_id="OPP-1", amount="10", currency="EUR"
        )
        items = [
            {"external_id": "OPP-1", "stage_id": won},  # moves the existing deal
            {"external_id": "OPP-2", "name": "New", "stage_id": proposal},
            {"external_id": "OPP-3", "stage_id": proposal},  # creating needs a name
            {"external_id": "OPP-4", "name": "X", "stage_id": theirs["stages"][0]["id"]},
            {"external_id": "OPP-2", "name": "Again", "stage_id": proposal},  # repeated
            {"external_id": "OPP-1", "amount": "12"},  # repeated, though valid alone
        ]
        url = "/v1/deals/batch/upsert"
        response = await client.post(url, json={"items": items}, headers=tenant.headers)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [(r["index"], r["status"]) for r in results] == [
            (0, "updated"),
            (1, "created"),
            (2, "error"),
            (3, "error"),
            (4, "error"),
            (5, "error"),
        ]
        assert results[2]["error"]["errors"][0]["loc"] == ["body", "items", 2, "name"]
        assert results[3]["error"]["errors"][0]["loc"] == ["body", "items", 3, "stage_id"]
        assert results[4]["error"]["errors"][0]["loc"] == ["body", "items", 4, "external_id"]
        assert results[0]["id"] == existing["id"]
        assert results[0]["version"] == 2

        moved = (await client.get(f"/v1/deals/{existing['id']}", headers=tenant.headers)).json()
        assert (moved["status"], moved["amount"]) == ("won", "10")
        assert await event_types(client, tenant, existing["id"]) == [
            "deal.created",
            "deal.updated",
            "deal.stage_changed",
            "deal.won",
        ]
        listed = await client.get("/v1/deals?sort=created_at", headers=tenant.headers)
        assert [d["external_id"] for d in listed.json()["data"]] == ["OPP-1", "OPP-2"]

        # The same batch again changes nothing and announces nothing.
        replay = await client.post(url, json={"items": items[:2]}, headers=tenant.headers)
        assert [r["status"] for r in replay.json()["results"]] == ["unchanged", "unchanged"]
        assert len(await event_types(client, tenant, existing["id"])) == 4

    async def test_batch_limits(self, client: AsyncClient, tenant: Tenant) -> None:
        url = "/v1/deals/batch/upsert"
        assert_problem(await client.post(url, json={"items": []}, headers=tenant.headers), 422)
        items = [{"external_id": f"E{i}", "name": "D"} for i in range(1001)]
        response = await client.post(url, json={"items": items}, headers=tenant.headers)
        assert_problem(response, 422, loc=["body", "items"])
        response = await client.post(
            url, json={"items": [{"name": "no external id"}]}, headers=tenant.headers
        )
        assert_problem(response, 422, loc=["body", "items", 0, "external_id"])


class TestLists:
    async def test_filters_and_sorts(self, client: AsyncClient, tenant: Tenant) -> None:
        pipeline = await create_pipeline(client, tenant)
        qualified, proposal, won = (s["id"] for s in pipeline["stages"][:3])
        owner = await create_user(client, tenant)
        company = await create_company(client, tenant)
        contact = await create_contact(client, tenant)
        small = await create_deal(
            client, tenant, qualified, name="Small one", amount="100", currency="EUR"
        )
        big = await create_deal(
            client,
            tenant,
            proposal,
            name="Big one",
            amount="9000",
            currency="USD",
            owner_id=owner["id"],
            company_id=company["id"],
            contact_ids=[contact["id"]],
            expected_close_date="2026-12-01",
        )
        done = await create_deal(client, tenant, won, name="Done", amount="50.5", currency="EUR")

        async def ids(query: str, path: str = "/v1/deals") -> list[str]:
            response = await client.get(f"{path}?{query}", headers=tenant.headers)
            assert response.status_code == 200, response.text
            return [d["id"] for d in response.json()["data"]]

        assert await ids("status=open&sort=created_at") == [small["id"], big["id"]]
        assert await ids(f"stage_id={won}") == [done["id"]]
        assert await ids(f"owner_id={owner['id']}") == [big["id"]]
        assert await ids("currency=EUR&sort=-amount") == [small["id"], done["id"]]
        assert await ids("q=big") == [big["id"]]
        assert await ids("closes_before=2027-01-01") == [big["id"]]
        assert await ids("sort=expected_close_date,name") == [big["id"], done["id"], small["id"]]
        assert await ids("", f"/v1/contacts/{contact['id']}/deals") == [big["id"]]
        assert await ids("", f"/v1/companies/{company['id']}/deals") == [big["id"]]
        assert await ids(f"contact_id={contact['id']}") == [big["id"]]
        # Pages by amount: the cursor carries a decimal.
        first = await client.get("/v1/deals?sort=amount&limit=2", headers=tenant.headers)
        second = await client.get(
            f"/v1/deals?sort=amount&limit=2&cursor={first.json()['next_cursor']}",
            headers=tenant.headers,
        )
        assert [d["id"] for d in first.json()["data"] + second.json()["data"]] == [
            done["id"],
            small["id"],
            big["id"],
        ]
        assert_problem(await client.get("/v1/deals?sort=probability", headers=tenant.headers), 422)


class TestDealAuth:
    async def test_no_key_wrong_scope_other_workspace(
        self,
        client: AsyncClient,
        tenant: Tenant,
        other_tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        assert_problem(await client.get("/v1/deals"), 401)
        reader = await create_key(sessionmaker, tenant, [Scope.deals_read])
        assert (await client.get("/v1/deals/forecast", headers=reader.headers)).status_code == 200
        response = await client.post("/v1/deals", json={"name": "D"}, headers=reader.headers)
        assert_problem(response, 403)
        batch = {"items": [{"external_id": "OPP-X", "name": "D"}]}
        response = await client.post("/v1/deals/batch/upsert", json=batch, headers=reader.headers)
        assert_problem(response, 403)
        pipelines_only = await create_key(sessionmaker, tenant, [Scope.pipelines_write])
        assert_problem(await client.get("/v1/deals", headers=pipelines_only.headers), 403)
        pipeline = await create_pipeline(client, other_tenant)
        theirs = await create_deal(client, other_tenant, pipeline["stages"][0]["id"])
        contact = await create_contact(client, other_tenant)
        company = await create_company(client, other_tenant)
        url = f"/v1/deals/{theirs['id']}"
        for method, path, body in [
            ("GET", url, None),
            ("PATCH", url, {"name": "x"}),
            ("DELETE", url, None),
            ("GET", f"{url}/stage-history", None),
            ("GET", f"/v1/contacts/{contact['id']}/deals", None),
            ("GET", f"/v1/companies/{company['id']}/deals", None),
            ("GET", f"/v1/deals/forecast?pipeline_id={pipeline['id']}", None),
        ]:
            response = await client.request(method, path, json=body, headers=tenant.headers)
            assert_problem(response, 404)
        # Their external id names nothing here: the batch creates a deal of our own.
        ours = await create_pipeline(client, tenant)
        batch = {"items": [{"external_id": "OPP-T", "name": "Ours", "pipeline_id": ours["id"]}]}
        await create_deal(client, other_tenant, pipeline["stages"][0]["id"], external_id="OPP-T")
        response = await client.post("/v1/deals/batch/upsert", json=batch, headers=tenant.headers)
        [result] = response.json()["results"]
        assert result["status"] == "created"
        assert result["id"] != theirs["id"]
