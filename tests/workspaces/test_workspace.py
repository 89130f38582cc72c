"""GET and PATCH /v1/workspace: any key reads it, admins change it."""

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from tests.builders import Tenant, assert_problem, create_key
from tests.loyalty.helpers import events_of


async def test_any_key_reads_its_workspace_and_an_admin_changes_it(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    reader = await create_key(sessionmaker, tenant, [Scope.contacts_read])
    got = await client.get("/v1/workspace", headers=reader.headers)
    assert got.status_code == 200, got.text
    assert (got.json()["id"], got.json()["time_zone"]) == (str(tenant.workspace_id), "UTC")
    denied = await client.patch(
        "/v1/workspace", json={"time_zone": "Europe/Berlin"}, headers=reader.headers
    )
    assert assert_problem(denied, 403)["required_scope"] == "admin"
    changed = await client.patch(
        "/v1/workspace",
        json={"time_zone": "Europe/Berlin", "default_country": "de"},
        headers=tenant.headers,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["time_zone"], changed.json()["default_country"]) == (
        "Europe/Berlin",
        "DE",
    )
    (event,) = await events_of(client, tenant, "workspace.updated")
    assert event["changes"]["time_zone"] == {"old": "UTC", "new": "Europe/Berlin"}
    assert_problem(await client.get("/v1/workspace"), 401)


async def test_a_bad_workspace_change_is_422_and_changes_nothing(
    client: AsyncClient, tenant: Tenant
) -> None:
    for body, field in (
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": None}, "time_zone"),
        ({"name": None}, "name"),
        ({"default_country": "DEU"}, "default_country"),
    ):
        answer = await client.patch("/v1/workspace", json=body, headers=tenant.headers)
        assert_problem(answer, 422, loc=["body", field])
    assert_problem(
        await client.patch("/v1/workspace", json={"id": "x"}, headers=tenant.headers), 422
    )
    got = await client.get("/v1/workspace", headers=tenant.headers)
    assert (got.json()["name"], got.json()["time_zone"]) == ("Test", "UTC")
