import asyncio
import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from tests.builders import Tenant, assert_problem, create_company, create_contact, create_key


class TestCreateCompany:
    async def test_created_with_normalised_domain(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        response = await client.post(
            "/v1/companies",
            json={
                "name": "Müller Logistik",
                "domain": "https://www.Mueller-Logistik.DE/impressum",
                "type": "supplier",
                "size": "medium",
                "industry": "Logistics",
                "phone": "+49 30 1234567",
                "external_id": "ERP-1",
            },
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["domain"] == "mueller-logistik.de"
        assert body["phone"] == "+49301234567"
        assert response.headers["location"].endswith(f"/v1/companies/{body['id']}")
        assert response.headers["etag"] == '"1"'

    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({}, ["body", "name"]),
            ({"name": ""}, ["body", "name"]),
            ({"name": "A", "domain": "not a domain"}, ["body", "domain"]),
            ({"name": "A", "type": "enemy"}, ["body", "type"]),
            ({"name": "A", "size": 40}, ["body", "size"]),
            ({"name": "A", "custom_fields": [1]}, ["body", "custom_fields"]),
            ({"name": "A", "owner_id": "me"}, ["body", "owner_id"]),
        ],
    )
    async def test_invalid_input_is_422(
        self, client: AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[Any]
    ) -> None:
        assert_problem(
            await client.post("/v1/companies", json=body, headers=tenant.headers), 422, loc=loc
        )

    async def test_duplicate_external_id_is_409(self, client: AsyncClient, tenant: Tenant) -> None:
        first = await create_company(client, tenant, external_id="C-1")
        response = await client.post(
            "/v1/companies", json={"name": "B", "external_id": "C-1"}, headers=tenant.headers
        )
        assert assert_problem(response, 409)["existing_id"] == first["id"]


class TestCompanyAuth:
    async def test_no_key_wrong_scope_other_workspace(
        self,
        client: AsyncClient,
        tenant: Tenant,
        other_tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        assert_problem(await client.get("/v1/companies"), 401)
        contacts_only = await create_key(sessionmaker, tenant, [Scope.contacts_write])
        assert_problem(await client.get("/v1/companies", headers=contacts_only.headers), 403)
        theirs = await create_company(client, other_tenant)
        url = f"/v1/companies/{theirs['id']}"
        assert_problem(await client.get(url, headers=tenant.headers), 404)
        assert_problem(await client.patch(url, json={"name": "x"}, headers=tenant.headers), 404)
        assert_problem(await client.delete(url, headers=tenant.headers), 404)
        assert_problem(await client.get(f"{url}/contacts", headers=tenant.headers), 404)


class TestUpdateCompany:
    async def test_patch_and_if_match(self, client: AsyncClient, tenant: Tenant) -> None:
        company = await create_company(client, tenant, tags=["a"])
        url = f"/v1/companies/{company['id']}"
        response = await client.patch(
            url, json={"industry": "Energy"}, headers={**tenant.headers, "If-Match": '"1"'}
        )
        assert response.json()["industry"] == "Energy"
        assert response.json()["version"] == 2
        stale = await client.patch(
            url, json={"industry": "Food"}, headers={**tenant.headers, "If-Match": '"1"'}
        )
        assert_problem(stale, 412)

    async def test_taking_another_companys_external_id_is_409(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        holder = await create_company(client, tenant, external_id="ACC-9")
        other = await create_company(client, tenant, name="Other")
        response = await client.patch(
            f"/v1/companies/{other['id']}", json={"external_id": "ACC-9"}, headers=tenant.headers
        )
        assert assert_problem(response, 409)["existing_id"] == holder["id"]

    async def test_name_cannot_be_cleared(self, client: AsyncClient, tenant: Tenant) -> None:
        company = await create_company(client, tenant)
        response = await client.patch(
            f"/v1/companies/{company['id']}", json={"name": None}, headers=tenant.headers
        )
        assert_problem(response, 422)

    async def test_if_none_match_gives_304(self, client: AsyncClient, tenant: Tenant) -> None:
        company = await create_company(client, tenant)
        response = await client.get(
            f"/v1/companies/{company['id']}", headers={**tenant.headers, "If-None-Match": 'W/"1"'}
        )
        assert response.status_code == 304


class TestCompanyContacts:
    async def test_a_company_lists_its_contacts(self, client: AsyncClient, tenant: Tenant) -> None:
        company = await create_company(client, tenant)
        mine = [await create_contact(client, tenant, company_id=company["id"]) for _ in range(3)]
        await create_contact(client, tenant)
        response = await client.get(
            f"/v1/companies/{company['id']}/contacts?limit=2", headers=tenant.headers
        )
        first = response.json()
        assert len(first["data"]) == 2
        assert first["next_cursor"]
        rest = await client.get(
            f"/v1/companies/{company['id']}/contacts?limit=2&cursor={first['next_cursor']}",
            headers=tenant.headers,
        )
        ids = [c["id"] for c in first["data"] + rest.json()["data"]]
        assert ids == [c["id"] for c in mine]

    async def test_deleting_a_company_keeps_its_contacts_unlinked(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        company = await create_company(client, tenant, name="Gone Corp")
        contact = await create_contact(client, tenant, company_id=company["id"])
        assert (
            await client.delete(f"/v1/companies/{company['id']}", headers=tenant.headers)
        ).status_code == 204
        assert_problem(
            await client.get(f"/v1/companies/{company['id']}", headers=tenant.headers), 404
        )
        after = (await client.get(f"/v1/contacts/{contact['id']}", headers=tenant.headers)).json()
        assert after["company_id"] is None
        assert after["version"] == 2
        assert (await client.get("/v1/contacts?q=gone", headers=tenant.headers)).json()[
            "data"
        ] == []
        response = await client.post(
            "/v1/contacts",
            json={"first_name": "L", "company_id": company["id"]},
            headers=tenant.headers,
        )
        assert_problem(response, 422, loc=["body", "company_id"])


class TestListCompanies:
    async def test_search_filters_and_sort(self, client: AsyncClient, tenant: Tenant) -> None:
        acme = await create_company(client, tenant, name="Acme", domain="acme.com", type="customer")
        cafe = await create_company(
            client, tenant, name="Café São Paulo", size="micro", industry="Food"
        )
        zulu = await create_company(client, tenant, name="zulu", tags=["key"])

        async def ids(**params: Any) -> list[str]:
            response = await client.get("/v1/companies", params=params, headers=tenant.headers)
            assert response.status_code == 200, response.text
            return [c["id"] for c in response.json()["data"]]

        assert await ids(q="sao paulo") == [cafe["id"]]
        assert await ids(q="acme.c") == [acme["id"]]
        assert await ids(domain="https://acme.com") == [acme["id"]]
        assert await ids(type="customer") == [acme["id"]]
        assert await ids(size="micro") == [cafe["id"]]
        assert await ids(industry="FOOD") == [cafe["id"]]
        assert await ids(tag="key") == [zulu["id"]]
        assert await ids(sort="name") == [acme["id"], cafe["id"], zulu["id"]]
        assert await ids(sort="-name") == [zulu["id"], cafe["id"], acme["id"]]
        assert_problem(await client.get("/v1/companies?sort=domain", headers=tenant.headers), 422)


class TestUpsertCompany:
    async def test_upsert_twice_gives_one_row(self, client: AsyncClient, tenant: Tenant) -> None:
        created = await client.put(
            "/v1/companies/external/ACC-1", json={"name": "Acme"}, headers=tenant.headers
        )
        assert created.status_code == 201
        again = await client.put(
            "/v1/companies/external/ACC-1", json={"name": "Acme"}, headers=tenant.headers
        )
        assert again.status_code == 200
        assert again.json()["id"] == created.json()["id"]
        assert again.json()["version"] == 1
        listed = await client.get("/v1/companies?external_id=ACC-1", headers=tenant.headers)
        assert len(listed.json()["data"]) == 1
        by_external = await client.get("/v1/companies/external/ACC-1", headers=tenant.headers)
        assert by_external.json()["id"] == created.json()["id"]

    async def test_creating_needs_a_name(self, client: AsyncClient, tenant: Tenant) -> None:
        response = await client.put(
            "/v1/companies/external/ACC-2", json={"industry": "x"}, headers=tenant.headers
        )
        assert_problem(response, 422, loc=["body", "name"])

    async def test_concurrent_upserts_make_one_row(
        self, live_client: AsyncClient, live_tenant: Tenant
    ) -> None:
        external_id = f"RACE-{uuid.uuid4().hex[:8]}"
        responses = await asyncio.gather(
            *(
                live_client.put(
                    f"/v1/companies/external/{external_id}",
                    json={"name": f"N{i}"},
                    headers=live_tenant.headers,
                )
                for i in range(5)
            )
        )
        assert sorted(r.status_code for r in responses) == [200, 200, 200, 200, 201]
        assert len({r.json()["id"] for r in responses}) == 1
