"""Roles: the matrix of every role by every operation of the spec, each let in exactly where the
spec's `x-roles` says (403 naming the scope elsewhere); keys acting as users bounded by the user's
role; sales and support users held to their own and their teams' records."""

from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.roles import ROLE_SCOPES, Role
from tests.builders import (
    Tenant,
    assert_problem,
    create_contact,
    create_deal,
    create_key,
    create_pipeline,
    create_ticket,
    create_user,
)
from tests.world import build_world, example_body, fill, operations

# Reads first, deletes last: what an allowed write does to the world comes after every read.
ORDER = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}


async def test_each_role_is_let_into_exactly_the_operations_the_spec_gives_it(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ids = await build_world(client, tenant)
    keys = {role: await create_key(sessionmaker, tenant, role=role) for role in Role}
    secured = [op for op in operations() if "security" in op[2]]
    assert len(secured) > 150
    matrix: dict[tuple[str, str], set[Role]] = {}
    for method, template, operation in sorted(secured, key=lambda op: ORDER[op[0]]):
        scope = next(iter(operation["security"][0].values()), [None])
        allowed = {Role(role) for role in operation["x-roles"]}
        # Denied roles first: a refusal must come before anything is looked at or changed.
        for role in sorted(Role, key=lambda role: role in allowed):
            headers = {**keys[role].headers, "If-Match": '"1"'}
            answer = await client.request(
                method, fill(template, ids), json=example_body(operation), headers=headers
            )
            where = (role, method, template, answer.text[:300])
            if role in allowed:
                assert answer.status_code != 403, where
                if method == "GET" and not template.endswith("/export"):
                    assert answer.status_code == 200, where
                matrix.setdefault((method, template), set()).add(role)
            else:
                assert answer.status_code == 403, where
                assert answer.json()["required_scope"] == scope[0], where
    # The matrix is not trivial: admins everywhere, every other role kept out of something.
    assert all(Role.admin in roles for roles in matrix.values())
    for role in set(Role) - {Role.admin}:
        assert any(role not in roles for roles in matrix.values()), role
        assert any(role in roles for roles in matrix.values()), role


async def test_an_api_key_gets_a_role(client: AsyncClient, tenant: Tenant) -> None:
    body = {"name": "ERP", "role": "integration", "scopes": ["segments:write"]}
    created = await client.post("/v1/api-keys", json=body, headers=tenant.headers)
    assert created.status_code == 201, created.text
    key = created.json()
    assert (key["role"], key["scopes"]) == ("integration", ["segments:write"])
    expected = sorted({*ROLE_SCOPES[Role.integration], "segments:write"})
    assert key["effective_scopes"] == expected
    erp = {"Authorization": f"Bearer {key['key']}"}
    segment = {"name": "S", "kind": "static"}
    assert (await client.post("/v1/segments", json=segment, headers=erp)).status_code == 201
    assert_problem(await client.get("/v1/api-keys", headers=erp), 403)


async def test_a_key_without_role_or_scopes_or_with_an_unknown_role_is_422(
    client: AsyncClient, tenant: Tenant
) -> None:
    for body in ({"name": "x"}, {"name": "x", "scopes": []}, {"name": "x", "role": "root"}):
        answer = await client.post("/v1/api-keys", json=body, headers=tenant.headers)
        assert_problem(answer, 422, loc=["body", "role" if "role" in body else "scopes"])


async def test_a_key_acting_as_a_user_does_no_more_than_the_users_role(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    analyst = await create_user(client, tenant, role="analyst")
    key = await create_key(sessionmaker, tenant, role=Role.admin, user_id=analyst["id"])
    assert (await client.get("/v1/contacts", headers=key.headers)).status_code == 200
    refused = await client.post("/v1/contacts", json={"first_name": "A"}, headers=key.headers)
    assert assert_problem(refused, 403)["required_scope"] == "contacts:write"


async def test_only_an_admin_grants_roles_and_own_records_is_for_sales_and_support(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    manager = await create_key(sessionmaker, tenant, role=Role.manager)
    body: dict[str, Any] = {"name": "Eve", "role": "admin"}
    assert_problem(await client.post("/v1/users", json=body, headers=manager.headers), 403)
    user = await create_user(client, tenant)
    patch = await client.patch(
        f"/v1/users/{user['id']}", json={"own_records_only": True}, headers=manager.headers
    )
    assert_problem(patch, 403)
    analyst = {"name": "Al", "role": "analyst", "own_records_only": True}
    answer = await client.post("/v1/users", json=analyst, headers=tenant.headers)
    assert_problem(answer, 422, loc=["body", "own_records_only"])
    rep = await create_user(client, tenant, role="sales", own_records_only=True)
    assert (rep["role"], rep["own_records_only"]) == ("sales", True)
    unknown = await client.post(
        "/v1/users", json={"name": "R", "role": "root"}, headers=tenant.headers
    )
    assert_problem(unknown, 422, loc=["body", "role"])
    nulled = await client.patch(
        f"/v1/users/{rep['id']}", json={"own_records_only": None}, headers=tenant.headers
    )
    assert_problem(nulled, 422, loc=["body", "own_records_only"])
    kept = await client.get(f"/v1/users/{rep['id']}", headers=tenant.headers)
    assert kept.json()["own_records_only"] is True


async def test_a_rep_held_to_own_records_sees_and_gives_only_their_teams(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    rep = await create_user(client, tenant, role="sales", own_records_only=True)
    mate = await create_user(client, tenant, name="Mate")
    stranger = await create_user(client, tenant, name="Stranger")
    team = {"name": "EMEA", "member_ids": [rep["id"], mate["id"]]}
    assert (await client.post("/v1/teams", json=team, headers=tenant.headers)).status_code == 201
    stage = (await create_pipeline(client, tenant))["stages"][0]["id"]
    visible, hidden = set(), set()
    for owner, seen in ((rep, visible), (mate, visible), (stranger, hidden), (None, hidden)):
        owner_id = owner["id"] if owner else None
        contact = await create_contact(client, tenant, owner_id=owner_id)
        deal = await create_deal(client, tenant, stage, owner_id=owner_id)
        ticket = await create_ticket(client, tenant, contact["id"], assignee_id=owner_id)
        seen |= {contact["id"], deal["id"], ticket["id"]}
    key = await create_key(sessionmaker, tenant, role=Role.sales, user_id=rep["id"])
    listed: set[str] = set()
    for resource in ("contacts", "deals", "tickets"):
        page = await client.get(f"/v1/{resource}", headers=key.headers)
        assert page.status_code == 200, page.text
        listed |= {record["id"] for record in page.json()["data"]}
        for record in page.json()["data"]:
            assert record["id"] in visible
    assert listed == visible
    found = await client.post("/v1/contacts/search", json={}, headers=key.headers)
    assert {c["id"] for c in found.json()["data"]} <= visible
    for hidden_id in hidden:
        for resource in ("contacts", "deals", "tickets"):
            answer = await client.get(f"/v1/{resource}/{hidden_id}", headers=key.headers)
            assert answer.status_code == 404
    exported = await client.get("/v1/exports/contacts", headers=key.headers)
    assert exported.status_code == 200
    assert not any(hidden_id in exported.text for hidden_id in hidden)
    # What the rep makes is theirs; they give records to their team, to no one else.
    made = await client.post("/v1/contacts", json={"first_name": "Lead"}, headers=key.headers)
    assert made.json()["owner_id"] == rep["id"]
    handed = await client.patch(
        f"/v1/contacts/{made.json()['id']}", json={"owner_id": mate["id"]}, headers=key.headers
    )
    assert handed.status_code == 200, handed.text
    given = {"first_name": "Gift", "owner_id": stranger["id"]}
    refused = await client.post("/v1/contacts", json=given, headers=key.headers)
    assert_problem(refused, 403, loc=["body", "owner_id"])
