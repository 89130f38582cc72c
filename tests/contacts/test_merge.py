import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
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
    create_ticket,
    define_custom_field,
)


async def get(client: AsyncClient, tenant: Tenant, path: str) -> dict[str, Any]:
    response = await client.get(path, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def merge(
    client: AsyncClient,
    tenant: Tenant,
    survivor: dict[str, Any],
    body: dict[str, Any],
    etag: str | None = None,
) -> Any:
    headers = {**tenant.headers, "If-Match": etag or f'"{survivor["version"]}"'}
    return await client.post(f"/v1/contacts/{survivor['id']}/merge", json=body, headers=headers)


async def post(client: AsyncClient, tenant: Tenant, path: str, body: dict[str, Any]) -> Any:
    response = await client.post(path, json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def family(client: AsyncClient, tenant: Tenant) -> dict[str, Any]:
    """A survivor and a duplicate with a record of every kind."""
    company = await create_company(client, tenant, name="Acme")
    for key in ("tier", "since"):
        await define_custom_field(client, tenant, "contacts", key)
    keep = await create_contact(
        client, tenant, first_name="Ada", last_name=None, email="ada@example.com",
        tags=["vip"], custom_fields={"tier": "gold"}, external_id="ERP-1",
    )  # fmt: skip
    dupe = await create_contact(
        client, tenant, first_name="Ada", last_name="Lovelace", email="a.lovelace@example.com",
        phone="+1 415 555 0100", tags=["newsletter"], company_id=company["id"],
        custom_fields={"tier": "silver", "since": "2019"}, consent={"email": "denied"},
    )  # fmt: skip
    pipeline = await create_pipeline(client, tenant)
    stage = pipeline["stages"][0]["id"]
    deal = await create_deal(client, tenant, stage, contact_ids=[dupe["id"], keep["id"]])
    other_deal = await create_deal(client, tenant, stage, contact_ids=[dupe["id"]])
    ticket = await create_ticket(client, tenant, dupe["id"])
    comment = await post(
        client, tenant, f"/v1/tickets/{ticket['id']}/comments",
        {"body": "Still broken", "author_contact_id": dupe["id"]},
    )  # fmt: skip
    interaction = await post(
        client, tenant, "/v1/interactions",
        {"contact_id": dupe["id"], "channel": "call", "direction": "inbound"},
    )  # fmt: skip
    order = await post(
        client, tenant, "/v1/orders", {"contact_id": dupe["id"], "currency": "EUR", "total": "5"}
    )
    feedback = await post(
        client, tenant, "/v1/feedback", {"contact_id": dupe["id"], "kind": "nps", "score": 9}
    )
    return {
        "keep": keep, "dupe": dupe, "company": company, "deal": deal, "other_deal": other_deal,
        "ticket": ticket, "comment": comment, "interaction": interaction, "order": order,
        "feedback": feedback,
    }  # fmt: skip


MOVED = {
    "deals": 2,
    "feedback": 1,
    "interactions": 1,
    "loyalty_entries": 0,
    "orders": 1,
    "referrals": 0,
    "segments": 0,
    "ticket_comments": 1,
    "tickets": 1,
}


class TestMerge:
    async def test_a_dry_run_shows_the_result_and_changes_nothing(
        self, client: AsyncClient, tenant: Tenant, family: dict[str, Any]
    ) -> None:
        keep, dupe = family["keep"], family["dupe"]
        response = await merge(client, tenant, keep, {"merge_ids": [dupe["id"]], "dry_run": True})
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["dry_run"] is True
        assert result["moved"] == MOVED
        survivor = result["survivor"]
        assert survivor["last_name"] == "Lovelace"
        assert survivor["additional_emails"] == ["a.lovelace@example.com"]
        assert "etag" not in response.headers
        assert await get(client, tenant, f"/v1/contacts/{keep['id']}") == keep
        assert await get(client, tenant, f"/v1/contacts/{dupe['id']}") == dupe
        order = await get(client, tenant, f"/v1/orders/{family['order']['id']}")
        assert order["contact_id"] == dupe["id"]
        types = [e["type"] for e in (await get(client, tenant, "/v1/events?limit=500"))["data"]]
        assert "contact.merged" not in types

    async def test_merging_moves_every_record_and_leaves_a_tombstone_that_redirects(
        self, client: AsyncClient, tenant: Tenant, family: dict[str, Any]
    ) -> None:
        keep, dupe = family["keep"], family["dupe"]
        body = {"merge_ids": [dupe["id"]], "fields": {"first_name": dupe["id"]}}
        response = await merge(client, tenant, keep, body)
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["moved"] == MOVED
        survivor = result["survivor"]
        assert response.headers["etag"] == f'"{survivor["version"]}"'
        assert (survivor["first_name"], survivor["last_name"]) == ("Ada", "Lovelace")
        assert survivor["email"] == "ada@example.com"
        assert survivor["additional_emails"] == ["a.lovelace@example.com"]
        assert survivor["phone"] == "+14155550100"
        assert survivor["tags"] == ["vip", "newsletter"]
        assert survivor["custom_fields"] == {"tier": "gold", "since": "2019"}
        assert survivor["company_id"] == family["company"]["id"]
        assert survivor["external_id"] == "ERP-1"
        assert survivor["consent"]["email"]["status"] == "denied"
        assert await get(client, tenant, f"/v1/contacts/{keep['id']}") == survivor

        gone = await client.get(f"/v1/contacts/{dupe['id']}", headers=tenant.headers)
        problem = assert_problem(gone, 301)
        assert gone.headers["location"] == f"/v1/contacts/{keep['id']}"
        assert problem["merged_into_id"] == keep["id"]
        patched = await client.patch(
            f"/v1/contacts/{dupe['id']}", json={"first_name": "X"}, headers=tenant.headers
        )
        assert_problem(patched, 404)

        for kind in ("order", "interaction", "feedback", "ticket"):
            record = await get(client, tenant, f"/v1/{kind}s/{family[kind]['id']}".replace(
                "feedbacks", "feedback"))  # fmt: skip
            assert record["contact_id"] == keep["id"], kind
            assert record["version"] == family[kind]["version"] + 1
        for deal in ("deal", "other_deal"):
            now = await get(client, tenant, f"/v1/deals/{family[deal]['id']}")
            assert now["contact_ids"] == [keep["id"]]
        comments = await get(client, tenant, f"/v1/tickets/{family['ticket']['id']}/comments")
        assert comments["data"][0]["author_contact_id"] == keep["id"]
        by_email = await get(client, tenant, "/v1/contacts?email=a.lovelace@example.com")
        assert [c["id"] for c in by_email["data"]] == [keep["id"]]
        timeline = await get(client, tenant, f"/v1/contacts/{keep['id']}/timeline")
        assert {e["kind"] for e in timeline["data"]} >= {"order", "interaction", "ticket"}

        events = (await get(client, tenant, "/v1/events?limit=500"))["data"]
        merged = [e for e in events if e["type"] == "contact.merged"]
        assert len(merged) == 1
        assert merged[0]["data"]["merged_ids"] == [dupe["id"]]
        deleted = [e for e in events if e["type"] == "contact.deleted"]
        assert deleted[-1]["data"]["merged_into_id"] == keep["id"]

    async def test_a_contact_merged_earlier_leads_to_the_latest_survivor(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        first = await create_contact(client, tenant, first_name="One")
        second = await create_contact(client, tenant, first_name="Two")
        third = await create_contact(client, tenant, first_name="Three")
        assert (await merge(client, tenant, second, {"merge_ids": [first["id"]]})).is_success
        second = await get(client, tenant, f"/v1/contacts/{second['id']}")
        assert (await merge(client, tenant, third, {"merge_ids": [second["id"]]})).is_success
        gone = await client.get(f"/v1/contacts/{first['id']}", headers=tenant.headers)
        assert gone.headers["location"] == f"/v1/contacts/{third['id']}"

    async def test_the_newest_rule_takes_the_most_recently_updated_values(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        old = await create_contact(client, tenant, first_name="Old", lifecycle_stage="lead")
        new = await create_contact(client, tenant, first_name="New", lifecycle_stage="customer")
        body = {"merge_ids": [new["id"]], "rule": "newest", "dry_run": True}
        result = (await merge(client, tenant, old, body)).json()
        assert result["survivor"]["first_name"] == "New"
        assert result["survivor"]["lifecycle_stage"] == "customer"


class TestMergeRefusals:
    async def test_without_if_match_428_and_with_a_stale_one_412(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        keep = await create_contact(client, tenant)
        dupe = await create_contact(client, tenant)
        path = f"/v1/contacts/{keep['id']}/merge"
        body = {"merge_ids": [dupe["id"]]}
        response = await client.post(path, json=body, headers=tenant.headers)
        assert_problem(response, 428)
        headers = {**tenant.headers, "If-Match": "*"}
        assert_problem(await client.post(path, json=body, headers=headers), 428)
        assert_problem(await merge(client, tenant, keep, body, etag='"7"'), 412)
        assert await get(client, tenant, f"/v1/contacts/{dupe['id']}") == dupe

    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({"merge_ids": []}, ["body", "merge_ids"]),
            ({"merge_ids": ["SELF"]}, ["body", "merge_ids"]),
            ({"merge_ids": ["0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a99"]}, ["body", "merge_ids"]),
            ({"merge_ids": ["DUPE"], "fields": {"email": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a99"}},
             ["body", "fields", "email"]),
            ({"merge_ids": ["DUPE"], "fields": {"tags": "DUPE"}}, ["body", "fields", "tags"]),
            ({"merge_ids": ["DUPE"], "rule": "oldest"}, ["body", "rule"]),
        ],
    )  # fmt: skip
    async def test_bad_bodies_are_422(
        self, client: AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[Any]
    ) -> None:
        keep = await create_contact(client, tenant)
        dupe = await create_contact(client, tenant)
        names = {"SELF": keep["id"], "DUPE": dupe["id"]}
        body["merge_ids"] = [names.get(i, i) for i in body["merge_ids"]]
        body["fields"] = {k: names.get(v, v) for k, v in body.get("fields", {}).items()}
        assert_problem(await merge(client, tenant, keep, body), 422, loc=loc)

    async def test_auth_scopes_and_other_workspaces(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
        other_tenant: Tenant,
    ) -> None:
        keep = await create_contact(client, tenant)
        dupe = await create_contact(client, tenant)
        foreign = await create_contact(client, other_tenant)
        body = {"merge_ids": [dupe["id"]]}
        response = await client.post(f"/v1/contacts/{keep['id']}/merge", json=body)
        assert_problem(response, 401)
        reader = await create_key(sessionmaker, tenant, [Scope.contacts_read])
        assert_problem(await merge(client, reader, keep, body), 403)
        assert_problem(await merge(client, other_tenant, keep, body), 404)
        response = await merge(client, tenant, keep, {"merge_ids": [foreign["id"]]})
        assert_problem(response, 422, loc=["body", "merge_ids"])
        response = await client.get(f"/v1/contacts/{dupe['id']}", headers=other_tenant.headers)
        assert_problem(response, 404)


class TestConcurrentMerges:
    async def test_two_merges_of_one_contact_into_different_survivors_one_wins(
        self, live_client: AsyncClient, live_tenant: Tenant, live_app: FastAPI
    ) -> None:
        dupe = await create_contact(live_client, live_tenant, email="both@example.com")
        a = await create_contact(live_client, live_tenant)
        b = await create_contact(live_client, live_tenant)
        responses = await asyncio.gather(
            merge(live_client, live_tenant, a, {"merge_ids": [dupe["id"]]}),
            merge(live_client, live_tenant, b, {"merge_ids": [dupe["id"]]}),
        )
        assert sorted(r.status_code for r in responses) == [200, 422]
        winner = a if responses[0].status_code == 200 else b
        gone = await live_client.get(f"/v1/contacts/{dupe['id']}", headers=live_tenant.headers)
        assert gone.headers["location"] == f"/v1/contacts/{winner['id']}"
        now = await get(live_client, live_tenant, f"/v1/contacts/{winner['id']}")
        assert now["email"] == "both@example.com"


class TestDuplicates:
    async def test_groups_by_email_phone_and_similar_names_at_one_company(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        acme = await create_company(client, tenant, name="Acme")
        gmail = [
            await create_contact(client, tenant, email="jane.doe@gmail.com"),
            await create_contact(client, tenant, email="janedoe+crm@googlemail.com"),
        ]
        phone = [
            await create_contact(client, tenant, first_name="P", phone="+1 415 555 0111"),
            await create_contact(client, tenant, first_name="Q", phone="(415) 555-0111"),
        ]
        names = [
            await create_contact(client, tenant, first_name="Jonathan", last_name="Smith",
                                 company_id=acme["id"]),
            await create_contact(client, tenant, first_name="Jonathon", last_name="Smith",
                                 company_id=acme["id"]),
        ]  # fmt: skip
        await create_contact(client, tenant, first_name="Jonathan", last_name="Smith")
        await create_contact(client, tenant, email="other@example.com")
        page = await get(client, tenant, "/v1/contacts/duplicates")
        groups = [(g["reason"], sorted(c["id"] for c in g["contacts"])) for g in page["data"]]
        assert groups == [
            ("email", sorted(c["id"] for c in gmail)),
            ("phone", sorted(c["id"] for c in phone)),
            ("name", sorted(c["id"] for c in names)),
        ]
        assert page["data"][0]["key"] == "janedoe@gmail.com"
        assert page["data"][1]["score"] == 0.9
        assert 0.6 <= page["data"][2]["score"] < 1

        first = await get(client, tenant, "/v1/contacts/duplicates?limit=2")
        assert [g["reason"] for g in first["data"]] == ["email", "phone"]
        rest = await get(
            client, tenant, f"/v1/contacts/duplicates?limit=2&cursor={first['next_cursor']}"
        )
        assert [g["reason"] for g in rest["data"]] == ["name"]
        assert rest["next_cursor"] is None
        only = await get(client, tenant, "/v1/contacts/duplicates?reason=phone")
        assert [g["reason"] for g in only["data"]] == ["phone"]

    async def test_errors_and_access(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
        other_tenant: Tenant,
    ) -> None:
        await create_contact(client, tenant, phone="+1 415 555 0111")
        await create_contact(client, tenant, phone="+1 415 555 0111")
        assert_problem(await client.get("/v1/contacts/duplicates"), 401)
        orders = await create_key(sessionmaker, tenant, [Scope.orders_read])
        assert_problem(await client.get("/v1/contacts/duplicates", headers=orders.headers), 403)
        assert (await get(client, other_tenant, "/v1/contacts/duplicates"))["data"] == []
        for query in ("reason=fax", "min_score=2", "limit=0", "cursor=bogus"):
            response = await client.get(f"/v1/contacts/duplicates?{query}", headers=tenant.headers)
            assert_problem(response, 422)
        first = await get(client, tenant, "/v1/contacts/duplicates?limit=1&reason=phone")
        response = await client.get(
            f"/v1/contacts/duplicates?cursor={first['data'] and 'x'}", headers=tenant.headers
        )
        assert_problem(response, 422)

    async def test_crossing_merges_do_not_deadlock(
        self, live_client: AsyncClient, live_tenant: Tenant
    ) -> None:
        for _ in range(3):
            a = await create_contact(live_client, live_tenant)
            b = await create_contact(live_client, live_tenant)
            responses = await asyncio.gather(
                merge(live_client, live_tenant, a, {"merge_ids": [b["id"]]}),
                merge(live_client, live_tenant, b, {"merge_ids": [a["id"]]}),
            )
            assert sorted(r.status_code for r in responses) == [200, 404], [
                r.text for r in responses
            ]
