"""The outbox and its feed: every write announces itself in its own transaction, numbered in
commit order; `GET /v1/events` pages through it."""

import asyncio
import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.contacts.schemas import ContactRead
from crm_api.core.scopes import Scope
from crm_api.webhooks.events import emit
from crm_api.webhooks.models import Event
from tests.builders import Tenant, assert_problem, create_company, create_contact, create_key


async def feed(client: AsyncClient, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/events", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def stored_events(
    sessionmaker: async_sessionmaker[AsyncSession], workspace_id: uuid.UUID
) -> list[Event]:
    async with sessionmaker() as session:
        statement = select(Event).where(Event.workspace_id == workspace_id).order_by(Event.sequence)
        return list((await session.execute(statement)).scalars())


class TestEveryWriteIsAnnounced:
    async def test_create_update_delete_of_a_contact(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        contact = await create_contact(client, tenant, email="ada@example.com")
        patched = await client.patch(
            f"/v1/contacts/{contact['id']}",
            json={"lifecycle_stage": "customer", "tags": ["vip"]},
            headers=tenant.headers,
        )
        assert patched.status_code == 200
        deleted = await client.delete(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
        assert deleted.status_code == 204

        events = await feed(client, tenant, type="contact.*")
        assert [e["type"] for e in events] == [
            "contact.created",
            "contact.updated",
            "contact.deleted",
        ]
        created, updated, gone = events
        assert created["data"] == contact  # the resource exactly as the API returned it
        assert created["changes"] is None
        assert updated["data"] == patched.json()
        assert updated["changes"] == {
            "lifecycle_stage": {"old": None, "new": "customer"},
            "tags": {"old": [], "new": ["vip"]},
        }
        assert gone["data"]["version"] == 3
        assert {e["resource_id"] for e in events} == {contact["id"]}
        sequences = [e["sequence"] for e in events]
        assert sequences == sorted(sequences)
        assert len(set(sequences)) == 3

    async def test_a_write_that_changes_nothing_announces_nothing(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        body = {"first_name": "Grace", "last_name": "Hopper"}
        for _ in range(2):
            response = await client.put(
                "/v1/contacts/external/ERP-1", json=body, headers=tenant.headers
            )
            assert response.status_code in (200, 201)
        same = await client.patch(
            f"/v1/contacts/{response.json()['id']}", json=body, headers=tenant.headers
        )
        assert same.json()["version"] == 1
        assert [e["type"] for e in await feed(client, tenant, type="contact.*")] == [
            "contact.created"
        ]

    async def test_company_writes_and_contacts_unlinked_by_a_delete(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        company = await create_company(client, tenant)
        contact = await create_contact(client, tenant, company_id=company["id"])
        renamed = await client.patch(
            f"/v1/companies/{company['id']}", json={"name": "Acme 2"}, headers=tenant.headers
        )
        assert renamed.status_code == 200
        await client.delete(f"/v1/companies/{company['id']}", headers=tenant.headers)

        events = await feed(client, tenant, type="company.*,contact.updated")
        assert [e["type"] for e in events] == [
            "company.created",
            "company.updated",
            "company.deleted",
            "contact.updated",
        ]
        assert events[1]["changes"] == {"name": {"old": "Acme", "new": "Acme 2"}}
        unlinked = events[3]
        assert unlinked["resource_id"] == contact["id"]
        assert unlinked["data"]["company_id"] is None
        assert unlinked["data"]["version"] == contact["version"] + 1
        assert unlinked["changes"] == {"company_id": {"old": company["id"], "new": None}}

    async def test_batch_upsert_announces_each_applied_item_only(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        await create_contact(client, tenant, email="taken@example.com")
        items = [
            {"external_id": "B-1", "first_name": "One"},
            {"external_id": "B-2", "email": "taken@example.com"},  # fails: address taken
            {"external_id": "B-3", "first_name": "Three"},
        ]
        response = await client.post(
            "/v1/contacts/batch/upsert", json={"items": items}, headers=tenant.headers
        )
        assert [r["status"] for r in response.json()["results"]] == ["created", "error", "created"]
        # The first, optimistic pass failed as a whole and was rolled back to its savepoint:
        # its events went with it. Only the items applied one by one afterwards are announced.
        created = await feed(client, tenant, type="contact.created")
        assert [e["data"].get("external_id") for e in created] == [None, "B-1", "B-3"]

    async def test_api_keys_are_announced_without_their_secret(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        created = await client.post(
            "/v1/api-keys",
            json={"name": "ERP", "scopes": ["contacts:read"]},
            headers=tenant.headers,
        )
        await client.delete(f"/v1/api-keys/{created.json()['id']}", headers=tenant.headers)
        events = await feed(client, tenant, type="api_key.*")
        assert [e["type"] for e in events][-2:] == ["api_key.created", "api_key.deleted"]
        assert all("key" not in e["data"] for e in events)
        assert created.json()["key"] not in str(events)

    async def test_a_failed_request_announces_nothing(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        await create_contact(client, tenant, email="one@example.com")
        before = await feed(client, tenant)
        clash = await client.post(
            "/v1/contacts", json={"email": "one@example.com"}, headers=tenant.headers
        )
        assert_problem(clash, 409)
        stale = await client.patch(
            f"/v1/contacts/{before[-1]['resource_id']}",
            json={"first_name": "X"},
            headers={**tenant.headers, "If-Match": '"7"'},
        )
        assert_problem(stale, 412)
        assert await feed(client, tenant) == before


class TestCommitAndRollback:
    async def test_a_rolled_back_transaction_emits_nothing(
        self, live_app: Any, live_tenant: Tenant
    ) -> None:
        sessionmaker = live_app.state.sessionmaker
        before = [e.id for e in await stored_events(sessionmaker, live_tenant.workspace_id)]
        async with sessionmaker() as session:
            data = ContactRead.model_validate(_contact_like())
            emit(session, live_tenant.workspace_id, "contact.created", data)
            await session.rollback()
            await session.commit()  # nothing left to publish
        after = [e.id for e in await stored_events(sessionmaker, live_tenant.workspace_id)]
        assert after == before

    async def test_a_rolled_back_savepoint_takes_its_events_only(
        self, live_app: Any, live_tenant: Tenant
    ) -> None:
        sessionmaker = live_app.state.sessionmaker
        data = ContactRead.model_validate(_contact_like())
        async with sessionmaker() as session:
            kept = emit(session, live_tenant.workspace_id, "contact.created", data)
            nested = await session.begin_nested()
            emit(session, live_tenant.workspace_id, "contact.updated", data, changes={})
            await nested.rollback()
            async with session.begin_nested():
                inner = emit(session, live_tenant.workspace_id, "contact.deleted", data)
            await session.commit()
        events = await stored_events(sessionmaker, live_tenant.workspace_id)
        assert [e.id for e in events][-2:] == [kept, inner]

    async def test_sequences_follow_commit_order_without_gaps_under_concurrency(
        self, live_client: AsyncClient, live_app: Any, live_tenant: Tenant
    ) -> None:
        async def write(n: int) -> None:
            response = await live_client.post(
                "/v1/contacts", json={"first_name": f"C{n}"}, headers=live_tenant.headers
            )
            assert response.status_code == 201

        await asyncio.gather(*(write(n) for n in range(20)))
        events = await stored_events(live_app.state.sessionmaker, live_tenant.workspace_id)
        sequences = [e.sequence for e in events]
        assert sequences == list(range(1, len(events) + 1))
        # Commit order is sequence order: each event's time is not before the previous one's.
        times = [e.occurred_at for e in events]
        assert times == sorted(times)

    async def test_unknown_event_types_are_refused_at_emit(self, live_app: Any) -> None:
        async with live_app.state.sessionmaker() as session:
            with pytest.raises(ValueError, match="unknown event type"):
                emit(
                    session,
                    uuid.uuid4(),
                    "contact.exploded",
                    ContactRead.model_validate(_contact_like()),
                )


def _contact_like() -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "external_id": None,
        "first_name": "Ada",
        "last_name": None,
        "email": None,
        "additional_emails": [],
        "phone": None,
        "additional_phones": [],
        "address": None,
        "birthday": None,
        "lifecycle_stage": None,
        "source": None,
        "tags": [],
        "consent": {
            "email": {"status": "unknown", "updated_at": None},
            "sms": {"status": "unknown", "updated_at": None},
        },
        "owner_id": None,
        "company_id": None,
        "referred_by_id": None,
        "merged_into_id": None,
        "erased_at": None,
        "custom_fields": {},
        "created_at": "2026-11-25T00:00:00Z",
        "updated_at": "2026-11-25T00:00:00Z",
        "version": 1,
    }


class TestFeed:
    async def test_pages_in_sequence_order_and_resumes_after_a_sequence(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        for n in range(5):
            await create_contact(client, tenant, first_name=f"P{n}")
        everything = await feed(client, tenant)
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = await client.get("/v1/events", params=params, headers=tenant.headers)
            body = page.json()
            seen += body["data"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
            assert 'rel="next"' in page.headers["link"]
        assert seen == everything
        middle = everything[2]["sequence"]
        after = await feed(client, tenant, after_sequence=middle)
        assert after == everything[3:]
        newest_first = await feed(client, tenant, sort="-sequence")
        assert newest_first == everything[::-1]

    async def test_filters_by_type_pattern_resource_and_time(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        company = await create_company(client, tenant)
        contact = await create_contact(client, tenant)
        everything = await feed(client, tenant)
        assert {e["type"] for e in await feed(client, tenant, type="*.created")} == {
            "company.created",
            "contact.created",
            "api_key.created",
        } & {e["type"] for e in everything}
        by_resource = await feed(client, tenant, resource_id=company["id"])
        assert [e["type"] for e in by_resource] == ["company.created"]
        last = everything[-1]
        assert last["resource_id"] == contact["id"]
        at = last["timestamp"]
        assert await feed(client, tenant, occurred_after=at) == [
            e for e in everything if e["timestamp"] >= at
        ]
        assert last not in await feed(client, tenant, occurred_before=at)

    async def test_one_event_by_id(self, client: AsyncClient, tenant: Tenant) -> None:
        await create_contact(client, tenant)
        event = (await feed(client, tenant))[-1]
        response = await client.get(f"/v1/events/{event['id']}", headers=tenant.headers)
        assert response.json() == event

    @pytest.mark.parametrize(
        ("params", "loc"),
        [
            ({"type": "contact.exploded"}, ["query", "type"]),
            ({"type": "nonsense"}, ["query", "type"]),
            ({"after_sequence": -1}, ["query", "after_sequence"]),
            ({"sort": "type"}, ["query", "sort"]),
            ({"cursor": "garbage"}, ["query", "cursor"]),
            ({"occurred_after": "yesterday"}, ["query", "occurred_after"]),
            ({"colour": "red"}, ["query", "colour"]),
        ],
    )
    async def test_bad_parameters_are_422(
        self, client: AsyncClient, tenant: Tenant, params: dict[str, Any], loc: list[str]
    ) -> None:
        response = await client.get("/v1/events", params=params, headers=tenant.headers)
        assert_problem(response, 422, loc=loc)

    async def test_needs_a_key_with_events_read(
        self,
        client: AsyncClient,
        tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        assert_problem(await client.get("/v1/events"), 401)
        contacts_only = await create_key(sessionmaker, tenant, [Scope.contacts_write])
        assert_problem(await client.get("/v1/events", headers=contacts_only.headers), 403)
        reader = await create_key(sessionmaker, tenant, [Scope.events_read])
        assert (await client.get("/v1/events", headers=reader.headers)).status_code == 200

    async def test_another_workspaces_events_are_invisible(
        self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        await create_contact(client, other_tenant)
        theirs = (await feed(client, other_tenant))[-1]
        mine = await feed(client, tenant)
        assert theirs["id"] not in {e["id"] for e in mine}
        response = await client.get(f"/v1/events/{theirs['id']}", headers=tenant.headers)
        assert_problem(response, 404)
