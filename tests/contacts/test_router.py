import asyncio
import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.contacts.models import Contact
from crm_api.core.scopes import Scope
from tests.builders import (
    Tenant,
    assert_problem,
    create_company,
    create_contact,
    create_key,
    create_user,
    define_custom_field,
)


async def count_contacts(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant) -> int:
    async with sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count()).where(Contact.workspace_id == tenant.workspace_id)
            )
            or 0
        )


def set_keys(address: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in address.items() if value is not None}


class TestCreateContact:
    async def test_created_with_normalised_fields(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        await define_custom_field(client, tenant, "contacts", "loyalty_id")
        response = await client.post(
            "/v1/contacts",
            json={
                "first_name": "  Lan ",
                "last_name": "Nguyễn",
                "email": "Lan.Nguyen@Example.COM",
                "additional_emails": ["lan@work.example", "LAN.NGUYEN@example.com"],
                "phone": "(415) 555-0100",
                "tags": ["VIP", "vip", "newsletter"],
                "consent": {"email": "granted"},
                "custom_fields": {"loyalty_id": "LX-1"},
                "address": {"city": "Hà Nội", "country": "vn"},
                "birthday": "1990-05-17",
                "lifecycle_stage": "lead",
            },
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["first_name"] == "Lan"
        assert body["email"] == "lan.nguyen@example.com"
        assert body["additional_emails"] == ["lan@work.example"]
        assert body["phone"] == "+14155550100"
        assert body["tags"] == ["VIP", "newsletter"]
        assert body["consent"]["email"]["status"] == "granted"
        assert body["consent"]["email"]["updated_at"] is not None
        assert body["consent"]["sms"] == {"status": "unknown", "updated_at": None}
        assert set_keys(body["address"]) == {"city": "Hà Nội", "country": "VN"}
        assert body["version"] == 1
        assert response.headers["etag"] == '"1"'
        assert response.headers["location"].endswith(f"/v1/contacts/{body['id']}")
        assert uuid.UUID(body["id"]).version == 7

    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({"email": "not-an-email"}, ["body", "email"]),
            ({"first_name": "A", "lifecycle_stage": "vip"}, ["body", "lifecycle_stage"]),
            ({"first_name": "A", "favourite_colour": "blue"}, ["body", "favourite_colour"]),
            ({"first_name": "A", "birthday": "2999-01-01"}, ["body", "birthday"]),
            ({"first_name": "A", "tags": ["x"] * 51}, ["body", "tags"]),
            ({"first_name": "A", "external_id": "has space"}, ["body", "external_id"]),
            (
                {"first_name": "A", "address": {"country": "Vietnam"}},
                ["body", "address", "country"],
            ),
            ({"first_name": "A", "phone": "12"}, ["body", "phone"]),
            ({"first_name": "A", "phone": "+1 999"}, ["body", "phone"]),
            ({"first_name": "A", "company_id": str(uuid.uuid4())}, ["body", "company_id"]),
            ({"tags": ["x"]}, ["body"]),
            ({"first_name": "   "}, ["body", "first_name"]),
        ],
    )
    async def test_invalid_input_is_422_naming_the_field(
        self, client: AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[Any]
    ) -> None:
        response = await client.post("/v1/contacts", json=body, headers=tenant.headers)
        assert_problem(response, 422, loc=loc)

    async def test_phone_without_country_needs_a_workspace_country(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        from tests.builders import create_tenant

        stateless = await create_tenant(sessionmaker, default_country=None)
        response = await client.post(
            "/v1/contacts", json={"phone": "415 555 0100"}, headers=stateless.headers
        )
        body = assert_problem(response, 422, loc=["body", "phone"])
        assert "default country" in body["detail"]

    async def test_duplicate_email_is_409_naming_the_holder(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        first = await create_contact(client, tenant, email="ada@example.com")
        for email in ("ADA@example.com", "ada@example.com"):
            response = await client.post(
                "/v1/contacts", json={"first_name": "B", "email": email}, headers=tenant.headers
            )
            body = assert_problem(response, 409)
            assert body["existing_id"] == first["id"]

    async def test_an_additional_email_is_unique_too(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        first = await create_contact(client, tenant, additional_emails=["shared@example.com"])
        response = await client.post(
            "/v1/contacts", json={"email": "Shared@example.com"}, headers=tenant.headers
        )
        assert assert_problem(response, 409)["existing_id"] == first["id"]

    async def test_same_email_in_two_workspaces_is_fine(
        self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        await create_contact(client, tenant, email="ada@example.com")
        await create_contact(client, other_tenant, email="ada@example.com")

    async def test_duplicate_external_id_is_409(self, client: AsyncClient, tenant: Tenant) -> None:
        first = await create_contact(client, tenant, external_id="ERP-1")
        response = await client.post(
            "/v1/contacts", json={"first_name": "B", "external_id": "ERP-1"}, headers=tenant.headers
        )
        assert assert_problem(response, 409)["existing_id"] == first["id"]

    async def test_company_of_another_workspace_is_refused(
        self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        foreign = await create_company(client, other_tenant)
        response = await client.post(
            "/v1/contacts",
            json={"first_name": "A", "company_id": foreign["id"]},
            headers=tenant.headers,
        )
        assert_problem(response, 422, loc=["body", "company_id"])


class TestAuth:
    async def test_no_key_is_401_with_challenge(self, client: AsyncClient) -> None:
        response = await client.get("/v1/contacts")
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")

    async def test_unknown_key_is_401(self, client: AsyncClient) -> None:
        response = await client.get("/v1/contacts", headers={"Authorization": "Bearer crm_nope"})
        assert_problem(response, 401)

    async def test_other_scheme_is_401(self, client: AsyncClient, tenant: Tenant) -> None:
        response = await client.get(
            "/v1/contacts", headers={"Authorization": f"Basic {tenant.key}"}
        )
        assert_problem(response, 401)

    async def test_key_without_the_scope_is_403(
        self, client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        companies_only = await create_key(sessionmaker, tenant, [Scope.companies_write])
        assert_problem(await client.get("/v1/contacts", headers=companies_only.headers), 403)
        response = await client.post(
            "/v1/contacts", json={"first_name": "A"}, headers=companies_only.headers
        )
        assert_problem(response, 403)

    async def test_read_scope_cannot_write(
        self, client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        reader = await create_key(sessionmaker, tenant, [Scope.contacts_read])
        assert (await client.get("/v1/contacts", headers=reader.headers)).status_code == 200
        response = await client.post(
            "/v1/contacts", json={"first_name": "A"}, headers=reader.headers
        )
        assert_problem(response, 403)

    async def test_write_scope_implies_read(
        self, client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        writer = await create_key(sessionmaker, tenant, [Scope.contacts_write])
        assert (await client.get("/v1/contacts", headers=writer.headers)).status_code == 200

    async def test_another_workspaces_contact_is_404_everywhere(
        self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        theirs = await create_contact(client, other_tenant, external_id="X-1")
        url = f"/v1/contacts/{theirs['id']}"
        assert_problem(await client.get(url, headers=tenant.headers), 404)
        assert_problem(
            await client.patch(url, json={"first_name": "Z"}, headers=tenant.headers), 404
        )
        assert_problem(await client.delete(url, headers=tenant.headers), 404)
        assert_problem(await client.get("/v1/contacts/external/X-1", headers=tenant.headers), 404)
        listed = await client.get("/v1/contacts", headers=tenant.headers)
        assert listed.json()["data"] == []
        still = await client.get(url, headers=other_tenant.headers)
        assert still.json()["first_name"] == "Ada"


class TestGetContact:
    async def test_get_returns_etag_and_304_when_unchanged(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        contact = await create_contact(client, tenant)
        response = await client.get(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
        assert response.status_code == 200
        assert response.json() == contact
        etag = response.headers["etag"]
        cached = await client.get(
            f"/v1/contacts/{contact['id']}", headers={**tenant.headers, "If-None-Match": etag}
        )
        assert cached.status_code == 304
        assert cached.headers["etag"] == etag

    async def test_unknown_and_malformed_ids(self, client: AsyncClient, tenant: Tenant) -> None:
        assert_problem(
            await client.get(f"/v1/contacts/{uuid.uuid4()}", headers=tenant.headers), 404
        )
        response = await client.get("/v1/contacts/not-a-uuid", headers=tenant.headers)
        assert_problem(response, 422, loc=["path", "contact_id"])

    async def test_get_by_external_id(self, client: AsyncClient, tenant: Tenant) -> None:
        contact = await create_contact(client, tenant, external_id="ERP-9")
        response = await client.get("/v1/contacts/external/ERP-9", headers=tenant.headers)
        assert response.json()["id"] == contact["id"]


class TestUpdateContact:
    async def test_patch_merges(self, client: AsyncClient, tenant: Tenant) -> None:
        for key, type in (("plan", "text"), ("seats", "number"), ("region", "text")):
            await define_custom_field(client, tenant, "contacts", key, type)
        contact = await create_contact(
            client,
            tenant,
            email="a@example.com",
            custom_fields={"plan": "gold", "seats": 3},
            address={"city": "Lyon", "country": "FR"},
            tags=["a"],
        )
        response = await client.patch(
            f"/v1/contacts/{contact['id']}",
            json={
                "last_name": None,
                "custom_fields": {"seats": None, "region": "EU"},
                "address": {"postal_code": "69001"},
                "tags": ["b"],
            },
            headers=tenant.headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["first_name"] == "Ada"
        assert body["last_name"] is None
        assert body["email"] == "a@example.com"
        assert body["custom_fields"] == {"plan": "gold", "region": "EU"}
        assert set_keys(body["address"]) == {
            "city": "Lyon",
            "country": "FR",
            "postal_code": "69001",
        }
        assert body["tags"] == ["b"]
        assert body["version"] == 2
        assert response.headers["etag"] == '"2"'
        assert body["updated_at"] >= contact["updated_at"]

    async def test_patch_without_changes_keeps_the_version(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        contact = await create_contact(client, tenant)
        response = await client.patch(
            f"/v1/contacts/{contact['id']}", json={"first_name": "Ada"}, headers=tenant.headers
        )
        assert response.json()["version"] == 1

    async def test_stale_if_match_is_412_and_changes_nothing(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        contact = await create_contact(client, tenant)
        url = f"/v1/contacts/{contact['id']}"
        ok = await client.patch(
            url, json={"first_name": "B"}, headers={**tenant.headers, "If-Match": '"1"'}
        )
        assert ok.status_code == 200
        for stale in ('"1"', 'W/"2"', '"7", "8"'):
            response = await client.patch(
                url, json={"first_name": "C"}, headers={**tenant.headers, "If-Match": stale}
            )
            assert assert_problem(response, 412)["current_etag"] == '"2"'
        assert (await client.get(url, headers=tenant.headers)).json()["first_name"] == "B"
        star = await client.patch(
            url, json={"first_name": "D"}, headers={**tenant.headers, "If-Match": "*"}
        )
        assert star.status_code == 200

    async def test_taking_another_contacts_external_id_is_409(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        holder = await create_contact(client, tenant, external_id="ERP-7")
        other = await create_contact(client, tenant)
        response = await client.patch(
            f"/v1/contacts/{other['id']}", json={"external_id": "ERP-7"}, headers=tenant.headers
        )
        assert assert_problem(response, 409)["existing_id"] == holder["id"]
        kept = await client.get(f"/v1/contacts/{other['id']}", headers=tenant.headers)
        assert kept.json()["external_id"] is None

    async def test_clearing_every_identifying_field_is_422(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        contact = await create_contact(client, tenant)
        response = await client.patch(
            f"/v1/contacts/{contact['id']}",
            json={"first_name": None, "last_name": None},
            headers=tenant.headers,
        )
        assert_problem(response, 422)
        kept = await client.get(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
        assert kept.json()["first_name"] == "Ada"

    async def test_changing_email_frees_the_old_one(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        contact = await create_contact(client, tenant, email="old@example.com")
        await client.patch(
            f"/v1/contacts/{contact['id']}",
            json={"email": "new@example.com"},
            headers=tenant.headers,
        )
        await create_contact(client, tenant, email="old@example.com")
        response = await client.post(
            "/v1/contacts", json={"email": "new@example.com"}, headers=tenant.headers
        )
        assert_problem(response, 409)

    async def test_consent_timestamp_moves_only_when_status_changes(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        contact = await create_contact(client, tenant, consent={"sms": "granted"})
        stamped = contact["consent"]["sms"]["updated_at"]
        same = await client.patch(
            f"/v1/contacts/{contact['id']}",
            json={"consent": {"sms": "granted"}},
            headers=tenant.headers,
        )
        assert same.json()["consent"]["sms"]["updated_at"] == stamped
        denied = await client.patch(
            f"/v1/contacts/{contact['id']}",
            json={"consent": {"sms": "denied"}},
            headers=tenant.headers,
        )
        assert denied.json()["consent"]["sms"]["status"] == "denied"
        assert denied.json()["consent"]["sms"]["updated_at"] > stamped


class TestDeleteContact:
    async def test_delete_then_404_and_email_free(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        contact = await create_contact(client, tenant, email="gone@example.com", external_id="E-1")
        url = f"/v1/contacts/{contact['id']}"
        assert (await client.delete(url, headers=tenant.headers)).status_code == 204
        assert_problem(await client.get(url, headers=tenant.headers), 404)
        assert_problem(await client.delete(url, headers=tenant.headers), 404)
        again = await create_contact(client, tenant, email="gone@example.com", external_id="E-1")
        assert again["id"] != contact["id"]

    async def test_delete_with_stale_if_match_is_412(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        contact = await create_contact(client, tenant)
        url = f"/v1/contacts/{contact['id']}"
        response = await client.delete(url, headers={**tenant.headers, "If-Match": '"5"'})
        assert_problem(response, 412)
        assert (await client.get(url, headers=tenant.headers)).status_code == 200


class TestListContacts:
    async def test_filters(self, client: AsyncClient, tenant: Tenant) -> None:
        company = await create_company(client, tenant)
        owner = (await create_user(client, tenant))["id"]
        a = await create_contact(
            client, tenant, email="a@example.com", lifecycle_stage="lead", tags=["vip"]
        )
        b = await create_contact(
            client,
            tenant,
            additional_emails=["b@example.com"],
            company_id=company["id"],
            owner_id=owner,
        )

        async def ids(**params: Any) -> list[str]:
            response = await client.get("/v1/contacts", params=params, headers=tenant.headers)
            assert response.status_code == 200, response.text
            return [c["id"] for c in response.json()["data"]]

        assert await ids(email="A@example.com") == [a["id"]]
        assert await ids(email="b@example.com") == [b["id"]]
        assert await ids(lifecycle_stage="lead") == [a["id"]]
        assert await ids(tag="vip") == [a["id"]]
        assert await ids(company_id=company["id"]) == [b["id"]]
        assert await ids(owner_id=owner) == [b["id"]]
        assert await ids(created_after=a["created_at"]) == [a["id"], b["id"]]
        assert await ids(created_before="2000-01-01T00:00:00") == []
        assert await ids(updated_after="2000-01-01T00:00:00Z") == [a["id"], b["id"]]

    async def test_sorting(self, client: AsyncClient, tenant: Tenant) -> None:
        for name in ("Cho", "Ánh", "Bao"):
            await create_contact(client, tenant, last_name=name)
        response = await client.get("/v1/contacts?sort=-last_name", headers=tenant.headers)
        assert [c["last_name"] for c in response.json()["data"]] == ["Cho", "Bao", "Ánh"]
        newest = await client.get("/v1/contacts?sort=-created_at", headers=tenant.headers)
        assert [c["last_name"] for c in newest.json()["data"]] == ["Bao", "Ánh", "Cho"]

    @pytest.mark.parametrize(
        ("query", "loc"),
        [
            ("sort=password", ["query", "sort"]),
            ("sort=created_at,created_at", ["query", "sort"]),
            ("limit=501", ["query", "limit"]),
            ("limit=0", ["query", "limit"]),
            ("cursor=bm9wZQ", ["query", "cursor"]),
            ("lifecycle_stage=vip", ["query", "lifecycle_stage"]),
            ("colour=blue", ["query", "colour"]),
            ("created_after=yesterday", ["query", "created_after"]),
        ],
    )
    async def test_bad_query_is_422(
        self, client: AsyncClient, tenant: Tenant, query: str, loc: list[str]
    ) -> None:
        response = await client.get(f"/v1/contacts?{query}", headers=tenant.headers)
        assert_problem(response, 422, loc=loc)

    async def test_cursor_is_bound_to_its_query(self, client: AsyncClient, tenant: Tenant) -> None:
        for _ in range(3):
            await create_contact(client, tenant, lifecycle_stage="lead")
        first = await client.get(
            "/v1/contacts?limit=1&lifecycle_stage=lead", headers=tenant.headers
        )
        cursor = first.json()["next_cursor"]
        response = await client.get(
            f"/v1/contacts?limit=1&lifecycle_stage=customer&cursor={cursor}", headers=tenant.headers
        )
        assert_problem(response, 422, loc=["query", "cursor"])

    async def test_pages_visit_every_row_once_while_rows_are_added(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        existing = {
            (await create_contact(client, tenant, first_name=f"P{i}"))["id"] for i in range(23)
        }
        seen: list[str] = []
        url = "/v1/contacts?limit=5"
        pages = 0
        while url:
            response = await client.get(url, headers=tenant.headers)
            assert response.status_code == 200
            seen += [c["id"] for c in response.json()["data"]]
            pages += 1
            # Rows arrive between pages, at the end of the order and (by sort) in the middle.
            await create_contact(client, tenant, first_name=f"new{pages}")
            link = response.headers.get("link")
            url = link[1 : link.index(">")] if link else ""
            assert (link is None) == (response.json()["next_cursor"] is None)
        assert len(seen) == len(set(seen))
        assert existing <= set(seen)

    async def test_descending_pages_visit_every_row_once(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        existing = {
            (await create_contact(client, tenant, last_name=f"N{i % 4}"))["id"] for i in range(12)
        }
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 5, "sort": "-last_name"} | ({"cursor": cursor} if cursor else {})
            body = (await client.get("/v1/contacts", params=params, headers=tenant.headers)).json()
            seen += [c["id"] for c in body["data"]]
            await create_contact(client, tenant, last_name="N2")
            if (cursor := body["next_cursor"]) is None:
                break
        assert len(seen) == len(set(seen))
        assert existing <= set(seen)


class TestSearch:
    async def test_accents_case_fragments_and_company(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        company = await create_company(client, tenant, name="Đông Á Trading")
        lan = await create_contact(
            client, tenant, first_name="Lan", last_name="Nguyễn", email="lan.n@example.com"
        )
        duc = await create_contact(
            client,
            tenant,
            first_name="Đức",
            last_name="Đặng",
            phone="+44 20 7946 0958",
            company_id=company["id"],
        )
        await create_contact(client, tenant, first_name="Olivia", last_name="Smith")

        async def found(q: str) -> list[str]:
            response = await client.get("/v1/contacts", params={"q": q}, headers=tenant.headers)
            assert response.status_code == 200, response.text
            return [c["id"] for c in response.json()["data"]]

        assert await found("nguyen") == [lan["id"]]
        assert await found("NGUYỄN") == [lan["id"]]
        assert await found("guy") == [lan["id"]]
        assert await found("dang") == [duc["id"]]
        assert await found("duc dang") == [duc["id"]]
        assert await found("lan.n@") == [lan["id"]]
        assert await found("7946 0958") == [duc["id"]]
        assert await found("+44 20 7946") == [duc["id"]]
        assert await found("dong a trad") == [duc["id"]]
        assert await found("100%_") == []
        assert await found("lan smith") == []

    async def test_renaming_the_company_updates_search(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        company = await create_company(client, tenant, name="Old Name Ltd")
        contact = await create_contact(client, tenant, company_id=company["id"])
        await client.patch(
            f"/v1/companies/{company['id']}", json={"name": "Brand New"}, headers=tenant.headers
        )
        response = await client.get("/v1/contacts?q=brand", headers=tenant.headers)
        assert [c["id"] for c in response.json()["data"]] == [contact["id"]]
        assert (await client.get("/v1/contacts?q=old", headers=tenant.headers)).json()["data"] == []


class TestIdempotency:
    async def test_replay_returns_the_first_response_and_creates_one_row(
        self, client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        headers = {**tenant.headers, "Idempotency-Key": "8e03978e-40d5-43e8-bc93-6894a57f9324"}
        first = await client.post("/v1/contacts", json={"first_name": "Once"}, headers=headers)
        again = await client.post("/v1/contacts", json={"first_name": "Once"}, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.content == first.content
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["etag"] == first.headers["etag"]
        assert again.headers["idempotent-replayed"] == "true"
        assert await count_contacts(sessionmaker, tenant) == 1

    async def test_quoted_key_is_the_same_key(self, client: AsyncClient, tenant: Tenant) -> None:
        first = await client.post(
            "/v1/contacts",
            json={"first_name": "Q"},
            headers={**tenant.headers, "Idempotency-Key": "k1"},
        )
        again = await client.post(
            "/v1/contacts",
            json={"first_name": "Q"},
            headers={**tenant.headers, "Idempotency-Key": '"k1"'},
        )
        assert again.json()["id"] == first.json()["id"]

    async def test_same_key_other_body_is_422(self, client: AsyncClient, tenant: Tenant) -> None:
        headers = {**tenant.headers, "Idempotency-Key": "key-2"}
        await client.post("/v1/contacts", json={"first_name": "A"}, headers=headers)
        response = await client.post("/v1/contacts", json={"first_name": "B"}, headers=headers)
        assert assert_problem(response, 422)["type"].endswith("idempotency-key-mismatch")
        other_path = await client.post("/v1/companies", json={"first_name": "A"}, headers=headers)
        assert_problem(other_path, 422)

    async def test_failed_request_is_not_stored(self, client: AsyncClient, tenant: Tenant) -> None:
        headers = {**tenant.headers, "Idempotency-Key": "key-3"}
        await create_contact(client, tenant, email="taken@example.com")
        failed = await client.post(
            "/v1/contacts", json={"email": "taken@example.com"}, headers=headers
        )
        assert_problem(failed, 409)
        # Nothing was stored for the key: a corrected request with it goes through.
        retried = await client.post(
            "/v1/contacts", json={"email": "free@example.com"}, headers=headers
        )
        assert retried.status_code == 201

    async def test_keys_are_per_workspace(
        self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        body = {"first_name": "Same"}
        one = await client.post(
            "/v1/contacts", json=body, headers={**tenant.headers, "Idempotency-Key": "shared"}
        )
        two = await client.post(
            "/v1/contacts", json=body, headers={**other_tenant.headers, "Idempotency-Key": "shared"}
        )
        assert one.json()["id"] != two.json()["id"]
        assert "idempotent-replayed" not in two.headers

    @pytest.mark.parametrize("key", ["k" * 256, "", "with space", "ключ"])
    async def test_malformed_key_is_422(
        self, client: AsyncClient, tenant: Tenant, key: str
    ) -> None:
        response = await client.post(
            "/v1/contacts",
            json={"first_name": "A"},
            headers={**tenant.headers, "Idempotency-Key": key.encode()},  # type: ignore[dict-item]
        )
        assert_problem(response, 422, loc=["header", "Idempotency-Key"])

    async def test_key_in_flight_is_409(
        self, live_client: AsyncClient, live_tenant: Tenant
    ) -> None:
        from crm_api.core.idempotency import _lock_id

        engine = live_client._transport.app.state.engine  # type: ignore[attr-defined]
        async with engine.connect() as holder:
            await holder.execute(
                select(func.pg_advisory_lock(_lock_id(live_tenant.workspace_id, "busy")))
            )
            response = await live_client.post(
                "/v1/contacts",
                json={"first_name": "A"},
                headers={**live_tenant.headers, "Idempotency-Key": "busy"},
            )
            await holder.execute(
                select(func.pg_advisory_unlock(_lock_id(live_tenant.workspace_id, "busy")))
            )
        assert assert_problem(response, 409)["type"].endswith("idempotency-key-in-use")


class TestUpsertByExternalId:
    async def test_twice_gives_one_row(
        self, client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        body = {"first_name": "Erp", "email": "erp@example.com"}
        created = await client.put(
            "/v1/contacts/external/ERP-77", json=body, headers=tenant.headers
        )
        assert created.status_code == 201
        assert created.headers["location"].endswith(created.json()["id"])
        replay = await client.put("/v1/contacts/external/ERP-77", json=body, headers=tenant.headers)
        assert replay.status_code == 200
        assert replay.json()["id"] == created.json()["id"]
        assert replay.json()["version"] == 1
        changed = await client.put(
            "/v1/contacts/external/ERP-77", json={"last_name": "Sync"}, headers=tenant.headers
        )
        assert changed.json()["version"] == 2
        assert changed.json()["first_name"] == "Erp"
        assert await count_contacts(sessionmaker, tenant) == 1

    async def test_the_path_alone_names_the_external_id(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        response = await client.put(
            "/v1/contacts/external/A",
            json={"first_name": "x", "external_id": "B"},
            headers=tenant.headers,
        )
        assert_problem(response, 422, loc=["body", "external_id"])

    async def test_creating_needs_an_identifying_field(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        response = await client.put(
            "/v1/contacts/external/A", json={"tags": ["x"]}, headers=tenant.headers
        )
        assert_problem(response, 422)


class TestBatchUpsert:
    async def test_creates_updates_and_reports_per_item(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        await create_contact(client, tenant, external_id="B-2", first_name="Old")
        await create_contact(client, tenant, external_id="B-3", first_name="Same")
        items = [
            {"external_id": "B-1", "first_name": "New"},
            {"external_id": "B-2", "first_name": "Renamed"},
            {"external_id": "B-3", "first_name": "Same"},
        ]
        response = await client.post(
            "/v1/contacts/batch/upsert", json={"items": items}, headers=tenant.headers
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [(r["index"], r["external_id"], r["status"]) for r in results] == [
            (0, "B-1", "created"),
            (1, "B-2", "updated"),
            (2, "B-3", "unchanged"),
        ]
        assert [r["version"] for r in results] == [1, 2, 1]

    async def test_failing_items_change_nothing_and_others_apply(
        self, client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        holder = await create_contact(client, tenant, email="held@example.com")
        items = [
            {"external_id": "C-1", "first_name": "Fine", "email": "fine@example.com"},
            {"external_id": "C-2", "first_name": "Taken", "email": "held@example.com"},
            {"external_id": "C-3", "first_name": "BadPhone", "phone": "+1 99"},
            {"external_id": "C-4", "first_name": "NoCompany", "company_id": str(uuid.uuid4())},
            {"external_id": "C-1", "first_name": "Repeat"},
            {"external_id": "C-5", "first_name": "Dup", "email": "fine@example.com"},
            {"external_id": "C-6", "first_name": "Also fine"},
        ]
        response = await client.post(
            "/v1/contacts/batch/upsert", json={"items": items}, headers=tenant.headers
        )
        results = response.json()["results"]
        assert [r["status"] for r in results] == [
            "created",
            "error",
            "error",
            "error",
            "error",
            "error",
            "created",
        ]
        assert results[1]["error"]["status"] == 409
        assert results[1]["error"]["existing_id"] == holder["id"]
        assert results[2]["error"]["errors"][0]["loc"] == ["body", "items", 2, "phone"]
        assert results[3]["error"]["errors"][0]["loc"] == ["body", "items", 3, "company_id"]
        assert results[4]["error"]["errors"][0]["loc"] == ["body", "items", 4, "external_id"]
        assert await count_contacts(sessionmaker, tenant) == 3
        listed = await client.get("/v1/contacts?sort=created_at", headers=tenant.headers)
        assert {c["first_name"] for c in listed.json()["data"]} == {"Ada", "Fine", "Also fine"}

    async def test_an_address_can_move_between_items(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        await create_contact(client, tenant, external_id="M-1", email="moving@example.com")
        items = [
            {"external_id": "M-2", "first_name": "Receiver", "email": "moving@example.com"},
            {"external_id": "M-1", "email": "stays@example.com"},
        ]
        response = await client.post(
            "/v1/contacts/batch/upsert", json={"items": items}, headers=tenant.headers
        )
        assert [r["status"] for r in response.json()["results"]] == ["created", "updated"]

    async def test_size_limits(self, client: AsyncClient, tenant: Tenant) -> None:
        empty = await client.post(
            "/v1/contacts/batch/upsert", json={"items": []}, headers=tenant.headers
        )
        assert_problem(empty, 422, loc=["body", "items"])
        items = [{"external_id": f"L-{i}", "first_name": "x"} for i in range(1001)]
        too_many = await client.post(
            "/v1/contacts/batch/upsert", json={"items": items}, headers=tenant.headers
        )
        assert_problem(too_many, 422, loc=["body", "items"])

    async def test_a_thousand_items_in_one_call(
        self, client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        items = [
            {"external_id": f"K-{i}", "first_name": f"K{i}", "email": f"k{i}@example.com"}
            for i in range(1000)
        ]
        response = await client.post(
            "/v1/contacts/batch/upsert", json={"items": items}, headers=tenant.headers
        )
        assert {r["status"] for r in response.json()["results"]} == {"created"}
        assert await count_contacts(sessionmaker, tenant) == 1000


class TestConcurrency:
    async def test_concurrent_patches_with_one_etag_one_wins(
        self, live_client: AsyncClient, live_tenant: Tenant
    ) -> None:
        contact = await create_contact(live_client, live_tenant)
        headers = {**live_tenant.headers, "If-Match": '"1"'}
        responses = await asyncio.gather(
            *(
                live_client.patch(
                    f"/v1/contacts/{contact['id']}", json={"first_name": f"W{i}"}, headers=headers
                )
                for i in range(5)
            )
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 412, 412, 412, 412]

    async def test_concurrent_upserts_of_one_external_id_make_one_row(
        self, live_client: AsyncClient, live_tenant: Tenant, live_app: Any
    ) -> None:
        responses = await asyncio.gather(
            *(
                live_client.put(
                    "/v1/contacts/external/RACE-1",
                    json={"first_name": f"R{i}"},
                    headers=live_tenant.headers,
                )
                for i in range(6)
            )
        )
        assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 200, 201]
        assert len({r.json()["id"] for r in responses}) == 1
        assert await count_contacts(live_app.state.sessionmaker, live_tenant) == 1

    async def test_concurrent_creates_with_one_email_make_one_row(
        self, live_client: AsyncClient, live_tenant: Tenant, live_app: Any
    ) -> None:
        responses = await asyncio.gather(
            *(
                live_client.post(
                    "/v1/contacts",
                    json={"first_name": f"E{i}", "email": "race@example.com"},
                    headers=live_tenant.headers,
                )
                for i in range(5)
            )
        )
        assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]
        assert await count_contacts(live_app.state.sessionmaker, live_tenant) == 1

    async def test_concurrent_idempotent_posts_make_one_row(
        self, live_client: AsyncClient, live_tenant: Tenant, live_app: Any
    ) -> None:
        headers = {**live_tenant.headers, "Idempotency-Key": "parallel"}
        responses = await asyncio.gather(
            *(
                live_client.post("/v1/contacts", json={"first_name": "P"}, headers=headers)
                for _ in range(5)
            )
        )
        assert {r.status_code for r in responses} <= {201, 409}
        created = {r.json()["id"] for r in responses if r.status_code == 201}
        assert len(created) == 1
        assert await count_contacts(live_app.state.sessionmaker, live_tenant) == 1


class TestHostileInput:
    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({"first_name": "A\u0000B"}, ["body", "first_name"]),
            ({"first_name": "A", "custom_fields": {"k": "v\u0000"}}, ["body", "custom_fields"]),
            ({"first_name": "A", "custom_fields": {"k\u0000": 1}}, ["body", "custom_fields"]),
            ({"first_name": "A", "tags": ["\u0000"]}, ["body", "tags"]),
            ({"first_name": "A", "address": {"city": "\u0000"}}, ["body", "address"]),
        ],
    )
    async def test_nul_characters_are_422(
        self, client: AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[Any]
    ) -> None:
        response = await client.post("/v1/contacts", json=body, headers=tenant.headers)
        assert_problem(response, 422, loc=loc)

    @pytest.mark.parametrize("text", ["\u001e", " \u001c\t", "\u2003"])
    async def test_text_that_is_only_space_to_python_is_422(
        self, client: AsyncClient, tenant: Tenant, text: str
    ) -> None:
        """JSON Schema's `\\S` does not count U+001C-U+001F as space, str.strip() does: such
        text passes the pattern, so it is refused after stripping instead of stored empty."""
        items = [{"external_id": "E-1", "first_name": "A", "address": {"region": text}}]
        response = await client.post(
            "/v1/contacts/batch/upsert", json={"items": items}, headers=tenant.headers
        )
        assert_problem(response, 422, loc=["body", "items", 0, "address", "region"])
        response = await client.post(
            "/v1/contacts", json={"last_name": text}, headers=tenant.headers
        )
        assert_problem(response, 422, loc=["body", "last_name"])

    async def test_nul_in_a_query_is_422(self, client: AsyncClient, tenant: Tenant) -> None:
        response = await client.get("/v1/contacts?q=a%00b", headers=tenant.headers)
        assert_problem(response, 422, loc=["query", "q"])


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:01", "9999-12-31T23:59:59-01:00"])
async def test_moments_outside_the_utc_calendar_are_422(
    client: AsyncClient, tenant: Tenant, moment: str
) -> None:
    response = await client.get(
        "/v1/contacts", params={"created_before": moment}, headers=tenant.headers
    )
    assert_problem(response, 422, loc=["query", "created_before"])


async def test_numbers_are_not_dates(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/contacts?updated_before=0.5", headers=tenant.headers)
    assert_problem(response, 422, loc=["query", "updated_before"])
    response = await client.post(
        "/v1/contacts", json={"first_name": "A", "birthday": 12345}, headers=tenant.headers
    )
    assert_problem(response, 422, loc=["body", "birthday"])
