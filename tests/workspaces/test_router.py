from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from tests.builders import Tenant, assert_problem, create_key


class TestApiKeys:
    async def test_create_use_list_and_revoke(self, client: AsyncClient, tenant: Tenant) -> None:
        response = await client.post(
            "/v1/api-keys",
            json={"name": "ERP sync", "scopes": ["contacts:write"]},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["key"].startswith("crm_")
        assert created["key"].startswith(created["prefix"])
        assert response.headers["location"].endswith(f"/v1/api-keys/{created['id']}")
        new_key = {"Authorization": f"Bearer {created['key']}"}
        assert (await client.get("/v1/contacts", headers=new_key)).status_code == 200
        assert_problem(await client.get("/v1/api-keys", headers=new_key), 403)

        listed = (await client.get("/v1/api-keys", headers=tenant.headers)).json()["data"]
        assert {k["name"] for k in listed} == {"admin", "ERP sync"}
        assert all("key" not in k for k in listed)
        shown = await client.get(f"/v1/api-keys/{created['id']}", headers=tenant.headers)
        assert "key" not in shown.json()

        revoke = await client.delete(f"/v1/api-keys/{created['id']}", headers=tenant.headers)
        assert revoke.status_code == 204
        assert_problem(await client.get("/v1/contacts", headers=new_key), 401)
        active = (await client.get("/v1/api-keys", headers=tenant.headers)).json()["data"]
        assert [k["name"] for k in active] == ["admin"]
        gone = f"/v1/api-keys/{created['id']}"
        assert_problem(await client.get(gone, headers=tenant.headers), 404)
        assert_problem(await client.delete(gone, headers=tenant.headers), 404)

    async def test_invalid_scopes_are_422(self, client: AsyncClient, tenant: Tenant) -> None:
        for scopes in ([], ["root"], None):
            response = await client.post(
                "/v1/api-keys", json={"name": "x", "scopes": scopes}, headers=tenant.headers
            )
            assert_problem(response, 422, loc=["body", "scopes"])

    async def test_needs_admin_and_stays_in_its_workspace(
        self,
        client: AsyncClient,
        tenant: Tenant,
        other_tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        assert_problem(await client.get("/v1/api-keys"), 401)
        writer = await create_key(
            sessionmaker, tenant, [Scope.contacts_write, Scope.companies_write]
        )
        assert_problem(await client.get("/v1/api-keys", headers=writer.headers), 403)
        theirs = (await client.get("/v1/api-keys", headers=other_tenant.headers)).json()["data"][0]
        assert_problem(
            await client.get(f"/v1/api-keys/{theirs['id']}", headers=tenant.headers), 404
        )
        assert_problem(
            await client.delete(f"/v1/api-keys/{theirs['id']}", headers=tenant.headers), 404
        )
