"""The audit log: each change through the API (and each row an import applies) is one entry in
the change's own transaction, with who, what (old -> new, secrets masked), when, the request id
and client address; admins alone read it, per workspace; nobody changes it afterwards."""

import asyncio
import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.audit.service import MASK, audited_changes
from crm_api.core.roles import Role
from crm_api.core.tenancy import enter_workspace
from crm_api.webhooks.events import PendingEvent
from tests.builders import Tenant, assert_problem, create_contact, create_key
from tests.imports.conftest import imported


async def _entries(client: AsyncClient, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    answer = await client.get("/v1/audit-log", params=params, headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


async def _key_id(client: AsyncClient, tenant: Tenant) -> str:
    keys = (await client.get("/v1/api-keys", headers=tenant.headers)).json()["data"]
    return next(key["id"] for key in keys if tenant.key.startswith(key["prefix"]))


async def test_a_contacts_changes_are_audited_with_who_what_and_where(
    client: AsyncClient, tenant: Tenant
) -> None:
    contact = await create_contact(client, tenant, first_name="Ada")
    path = f"/v1/contacts/{contact['id']}"
    headers = {**tenant.headers, "X-Request-ID": "change-42"}
    renamed = await client.patch(path, json={"first_name": "Grace"}, headers=headers)
    assert renamed.status_code == 200
    assert (await client.delete(path, headers=tenant.headers)).status_code == 204
    entries = await _entries(client, tenant, resource_id=contact["id"])
    assert [e["action"] for e in entries] == ["deleted", "updated", "created"]  # newest first
    deleted, updated, created = entries
    assert updated["changes"]["first_name"] == {"old": "Ada", "new": "Grace"}
    assert updated["request_id"] == "change-42"
    assert updated["operation"] == "contacts_update"
    assert updated["client_address"] == "127.0.0.1"
    assert {e["api_key_id"] for e in entries} == {await _key_id(client, tenant)}
    assert created["changes"]["first_name"] == {"old": None, "new": "Ada"}
    assert deleted["resource"] == "contact"
    assert created["occurred_at"] <= updated["occurred_at"] <= deleted["occurred_at"]


async def test_secrets_are_masked(client: AsyncClient, tenant: Tenant) -> None:
    body = {"url": "https://erp.example.com/hooks", "event_types": ["contact.*"]}
    endpoint = await client.post("/v1/webhook-endpoints", json=body, headers=tenant.headers)
    assert endpoint.status_code == 201
    secret = endpoint.json()["secret"]
    rotated = await client.post(
        f"/v1/webhook-endpoints/{endpoint.json()['id']}/rotate-secret", headers=tenant.headers
    )
    assert rotated.status_code == 200, rotated.text
    answer = await client.get(
        "/v1/audit-log", params={"resource": "webhook_endpoint"}, headers=tenant.headers
    )
    assert secret not in answer.text
    assert rotated.json()["secret"] not in answer.text
    assert len(answer.json()["data"]) == 2


def test_secret_fields_are_masked_old_and_new_at_any_depth() -> None:
    changes = {
        "signing_secret": {"old": "whsec_a", "new": "whsec_b"},
        "settings": {"old": {"token": "t1", "name": "a"}, "new": {"token": "t2", "name": "b"}},
        "name": {"old": "x", "new": "y"},
    }
    event = PendingEvent(uuid.uuid4(), uuid.uuid4(), "webhook_endpoint.updated", None, {},
                         changes, None, None)  # fmt: skip
    assert audited_changes(event, "updated") == {
        "signing_secret": MASK,
        "settings": {"old": {"token": MASK, "name": "a"}, "new": {"token": MASK, "name": "b"}},
        "name": {"old": "x", "new": "y"},
    }
    created = PendingEvent(uuid.uuid4(), uuid.uuid4(), "api_key.created", None,
                           {"key_hash": "abc", "name": "k"}, None, None, None)  # fmt: skip
    assert audited_changes(created, "created") == {
        "key_hash": MASK,
        "name": {"old": None, "new": "k"},
    }


async def test_a_write_that_fails_leaves_no_entry(client: AsyncClient, tenant: Tenant) -> None:
    await create_contact(client, tenant, external_id="E-1")
    clash = await client.post(
        "/v1/contacts", json={"first_name": "B", "external_id": "E-1"}, headers=tenant.headers
    )
    assert_problem(clash, 409)
    assert len(await _entries(client, tenant, resource="contact")) == 1


async def test_only_admins_read_it_and_each_workspace_its_own(
    client: AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await create_contact(client, tenant)
    assert_problem(await client.get("/v1/audit-log"), 401)
    for role in set(Role) - {Role.admin}:
        key = await create_key(sessionmaker, tenant, role=role)
        refused = await client.get("/v1/audit-log", headers=key.headers)
        assert assert_problem(refused, 403)["required_scope"] == "audit_log:read"
    assert await _entries(client, other_tenant) == []


async def test_filters_and_bad_parameters(client: AsyncClient, tenant: Tenant) -> None:
    contact = await create_contact(client, tenant)
    await client.delete(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
    assert [e["action"] for e in await _entries(client, tenant, action="deleted")] == ["deleted"]
    assert await _entries(client, tenant, occurred_after="2999-01-01T00:00:00Z") == []
    oldest = await _entries(client, tenant, sort="created_at", limit=1)
    assert oldest[0]["action"] == "created"
    for params in ({"sort": "resource"}, {"resource_id": "nope"}, {"colour": "red"}):
        answer = await client.get("/v1/audit-log", params=params, headers=tenant.headers)
        assert_problem(answer, 422)


async def test_rows_an_import_applies_are_audited_as_its_key(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    finished = await imported(client, sessionmaker, tenant, "email\na@example.com\nb@example.com\n")
    assert finished["status"] == "completed", finished
    entries = await _entries(client, tenant, resource="contact")
    assert len(entries) == 2
    assert {e["operation"] for e in entries} == {"imports_apply"}
    assert {e["api_key_id"] for e in entries} == {await _key_id(client, tenant)}


async def test_nobody_changes_an_entry(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await create_contact(client, tenant)
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        async with sessionmaker() as session:
            await enter_workspace(session, tenant.workspace_id)
            with pytest.raises(DBAPIError, match="permission denied"):
                await session.execute(text(statement))
            await session.rollback()
    async with sessionmaker() as session:  # the tables' owner: the trigger refuses it too
        with pytest.raises(DBAPIError, match="append-only"):
            await session.execute(text("UPDATE audit_log SET action = 'x'"))
        await session.rollback()
    assert len(await _entries(client, tenant)) == 1


async def test_concurrent_updates_are_each_audited_once(
    live_client: AsyncClient, live_tenant: Tenant
) -> None:
    contact = await create_contact(live_client, live_tenant)
    path = f"/v1/contacts/{contact['id']}"
    answers = await asyncio.gather(
        *(
            live_client.patch(path, json={"first_name": f"N{i}"}, headers=live_tenant.headers)
            for i in range(8)
        )
    )
    assert {a.status_code for a in answers} == {200}
    updates = await _entries(live_client, live_tenant, resource_id=contact["id"], action="updated")
    assert len(updates) == 8
    assert len({e["event_id"] for e in updates}) == 8
    assert sorted(e["changes"]["first_name"]["new"] for e in updates) == sorted(
        f"N{i}" for i in range(8)
    )
