import asyncio
import uuid

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from tests.builders import (
    Tenant,
    assert_problem,
    create_company,
    create_contact,
    create_key,
    create_user,
)


class TestUsers:
    async def test_create_get_list_update(self, client: AsyncClient, tenant: Tenant) -> None:
        response = await client.post(
            "/v1/users",
            json={"name": " Grace Hopper ", "email": "Grace@Acme.com", "title": "AE"},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
        user = response.json()
        assert (user["name"], user["email"], user["active"]) == (
            "Grace Hopper",
            "grace@acme.com",
            True,
        )
        assert response.headers["location"].endswith(f"/v1/users/{user['id']}")
        await create_user(client, tenant, name="Ada", active=False)
        listed = await client.get("/v1/users?active=true&sort=name", headers=tenant.headers)
        assert [u["name"] for u in listed.json()["data"]] == ["Grace Hopper"]
        found = await client.get("/v1/users?q=acme", headers=tenant.headers)
        assert [u["id"] for u in found.json()["data"]] == [user["id"]]
        patched = await client.patch(
            f"/v1/users/{user['id']}",
            json={"title": None},
            headers={**tenant.headers, "If-Match": '"1"'},
        )
        assert patched.json()["title"] is None
        assert patched.headers["etag"] == '"2"'

    async def test_email_is_unique_in_the_workspace(
        self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        first = await create_user(client, tenant, email="grace@acme.com")
        again = await client.post(
            "/v1/users", json={"name": "G", "email": "GRACE@acme.com"}, headers=tenant.headers
        )
        assert assert_problem(again, 409, loc=["body", "email"])["existing_id"] == first["id"]
        await create_user(client, other_tenant, email="grace@acme.com")

    async def test_invalid_input(self, client: AsyncClient, tenant: Tenant) -> None:
        for body, loc in [
            ({}, ["body", "name"]),
            ({"name": "A", "email": "nope"}, ["body", "email"]),
            ({"name": "A", "active": "maybe"}, ["body", "active"]),
            ({"name": "A", "role": "boss"}, ["body", "role"]),
        ]:
            response = await client.post("/v1/users", json=body, headers=tenant.headers)
            assert_problem(response, 422, loc=loc)
        user = await create_user(client, tenant)
        response = await client.patch(
            f"/v1/users/{user['id']}", json={"active": None}, headers=tenant.headers
        )
        assert_problem(response, 422, loc=["body", "active"])

    async def test_upsert_by_external_id(self, client: AsyncClient, tenant: Tenant) -> None:
        url = "/v1/users/external/HR-1"
        assert_problem(await client.put(url, json={"title": "AE"}, headers=tenant.headers), 422)
        made = await client.put(url, json={"name": "Lan"}, headers=tenant.headers)
        assert made.status_code == 201
        again = await client.put(url, json={"name": "Lan"}, headers=tenant.headers)
        assert (again.status_code, again.json()["version"]) == (200, 1)
        changed = await client.put(url, json={"title": "AE"}, headers=tenant.headers)
        assert changed.json()["version"] == 2
        got = await client.get(url, headers=tenant.headers)
        assert got.json()["id"] == made.json()["id"]

    async def test_auth(
        self,
        client: AsyncClient,
        tenant: Tenant,
        other_tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        assert_problem(await client.get("/v1/users"), 401)
        reader = await create_key(sessionmaker, tenant, [Scope.users_read])
        assert (await client.get("/v1/users", headers=reader.headers)).status_code == 200
        assert_problem(
            await client.post("/v1/users", json={"name": "x"}, headers=reader.headers), 403
        )
        contacts_only = await create_key(sessionmaker, tenant, [Scope.contacts_write])
        assert_problem(await client.get("/v1/teams", headers=contacts_only.headers), 403)
        theirs = await create_user(client, other_tenant)
        url = f"/v1/users/{theirs['id']}"
        assert_problem(await client.get(url, headers=tenant.headers), 404)
        assert_problem(await client.patch(url, json={"name": "x"}, headers=tenant.headers), 404)
        assert_problem(await client.delete(url, headers=tenant.headers), 404)


class TestOwners:
    async def test_owner_must_be_an_active_user_of_the_workspace(
        self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        inactive = await create_user(client, tenant, active=False)
        stranger = await create_user(client, other_tenant)
        for owner_id in (str(uuid.uuid4()), inactive["id"], stranger["id"]):
            for resource, body in (("contacts", {"first_name": "A"}), ("companies", {"name": "A"})):
                response = await client.post(
                    f"/v1/{resource}", json={**body, "owner_id": owner_id}, headers=tenant.headers
                )
                assert_problem(response, 422, loc=["body", "owner_id"])

    async def test_a_deactivated_owner_keeps_their_records(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        owner = await create_user(client, tenant)
        contact = await create_contact(client, tenant, owner_id=owner["id"])
        await client.patch(
            f"/v1/users/{owner['id']}", json={"active": False}, headers=tenant.headers
        )
        # Other fields still change; the owner stays; giving the contact to them again is 422.
        url = f"/v1/contacts/{contact['id']}"
        response = await client.patch(
            url, json={"first_name": "B", "owner_id": owner["id"]}, headers=tenant.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["owner_id"] == owner["id"]
        other = await create_contact(client, tenant, email="b@example.com")
        response = await client.patch(
            f"/v1/contacts/{other['id']}", json={"owner_id": owner["id"]}, headers=tenant.headers
        )
        assert_problem(response, 422, loc=["body", "owner_id"])

    async def test_batch_items_with_unknown_owners_fail_alone(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        owner = await create_user(client, tenant)
        items = [
            {"external_id": "E1", "first_name": "A", "owner_id": owner["id"]},
            {"external_id": "E2", "first_name": "B", "owner_id": str(uuid.uuid4())},
        ]
        response = await client.post(
            "/v1/contacts/batch/upsert", json={"items": items}, headers=tenant.headers
        )
        results = response.json()["results"]
        assert [r["status"] for r in results] == ["created", "error"]
        assert results[1]["error"]["errors"][0]["loc"] == ["body", "items", 1, "owner_id"]

    async def test_a_user_who_owns_records_cannot_be_deleted(
        self, client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        owner = await create_user(client, tenant)
        contact = await create_contact(client, tenant, owner_id=owner["id"])
        await create_company(client, tenant, owner_id=owner["id"])
        await create_key(sessionmaker, tenant, [Scope.contacts_read], user_id=owner["id"])
        url = f"/v1/users/{owner['id']}"
        body = assert_problem(await client.delete(url, headers=tenant.headers), 409)
        assert body["owned"] == {"api_keys": 1, "companies": 1, "contacts": 1}
        await client.delete(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
        body = assert_problem(await client.delete(url, headers=tenant.headers), 409)
        assert body["owned"] == {"api_keys": 1, "companies": 1}

    async def test_deleting_a_user_takes_them_out_of_their_teams(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        leaving, staying = (
            await create_user(client, tenant),
            await create_user(client, tenant, name="B"),
        )
        team = await client.post(
            "/v1/teams",
            json={"name": "EMEA", "member_ids": [leaving["id"], staying["id"]]},
            headers=tenant.headers,
        )
        assert (
            await client.delete(f"/v1/users/{leaving['id']}", headers=tenant.headers)
        ).status_code == 204
        after = await client.get(f"/v1/teams/{team.json()['id']}", headers=tenant.headers)
        assert after.json()["member_ids"] == [staying["id"]]
        assert after.json()["version"] == 2
        assert_problem(await client.get(f"/v1/users/{leaving['id']}", headers=tenant.headers), 404)


class TestKeysActingAsUsers:
    async def test_a_key_works_while_its_user_is_active(
        self, client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        user = await create_user(client, tenant)
        response = await client.post(
            "/v1/api-keys",
            json={"name": "Grace's", "scopes": ["contacts:read"], "user_id": user["id"]},
            headers=tenant.headers,
        )
        assert response.json()["user_id"] == user["id"]
        key = Tenant(tenant.workspace_id, response.json()["key"])
        assert (await client.get("/v1/contacts", headers=key.headers)).status_code == 200
        await client.patch(
            f"/v1/users/{user['id']}", json={"active": False}, headers=tenant.headers
        )
        assert_problem(await client.get("/v1/contacts", headers=key.headers), 401)
        await client.patch(f"/v1/users/{user['id']}", json={"active": True}, headers=tenant.headers)
        assert (await client.get("/v1/contacts", headers=key.headers)).status_code == 200

    async def test_a_key_for_an_unknown_user_is_422(
        self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        stranger = await create_user(client, other_tenant)
        response = await client.post(
            "/v1/api-keys",
            json={"name": "x", "scopes": ["admin"], "user_id": stranger["id"]},
            headers=tenant.headers,
        )
        assert_problem(response, 422, loc=["body", "user_id"])


class TestTeams:
    async def test_members_replace_and_filter(self, client: AsyncClient, tenant: Tenant) -> None:
        a, b = (
            await create_user(client, tenant, name="A"),
            await create_user(client, tenant, name="B"),
        )
        response = await client.post(
            "/v1/teams",
            json={"name": "Renewals", "member_ids": [b["id"], a["id"], a["id"]]},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
        team = response.json()
        assert team["member_ids"] == [a["id"], b["id"]]  # oldest user first, once each
        patched = await client.patch(
            f"/v1/teams/{team['id']}", json={"member_ids": [b["id"]]}, headers=tenant.headers
        )
        assert (patched.json()["member_ids"], patched.json()["version"]) == ([b["id"]], 2)
        same = await client.patch(
            f"/v1/teams/{team['id']}", json={"member_ids": [b["id"]]}, headers=tenant.headers
        )
        assert same.json()["version"] == 2
        members = await client.get(f"/v1/users?team_id={team['id']}", headers=tenant.headers)
        assert [u["id"] for u in members.json()["data"]] == [b["id"]]
        teams = await client.get(f"/v1/teams?member_id={a['id']}", headers=tenant.headers)
        assert teams.json()["data"] == []

    async def test_errors(self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
        stranger = await create_user(client, other_tenant)
        response = await client.post(
            "/v1/teams", json={"name": "T", "member_ids": [stranger["id"]]}, headers=tenant.headers
        )
        assert_problem(response, 422, loc=["body", "member_ids", 0])
        await client.post("/v1/teams", json={"name": "Sales"}, headers=tenant.headers)
        again = await client.post("/v1/teams", json={"name": "SALES"}, headers=tenant.headers)
        assert_problem(again, 409, loc=["body", "name"])
        theirs = await client.post("/v1/teams", json={"name": "T"}, headers=other_tenant.headers)
        url = f"/v1/teams/{theirs.json()['id']}"
        assert_problem(await client.get(url, headers=tenant.headers), 404)
        assert_problem(await client.delete(url, headers=tenant.headers), 404)


class TestConcurrency:
    async def test_two_users_racing_for_one_email_one_wins(
        self, live_client: AsyncClient, live_tenant: Tenant
    ) -> None:
        responses = await asyncio.gather(
            *(
                live_client.post(
                    "/v1/users",
                    json={"name": f"U{i}", "email": "race@acme.com"},
                    headers=live_tenant.headers,
                )
                for i in range(4)
            )
        )
        assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
