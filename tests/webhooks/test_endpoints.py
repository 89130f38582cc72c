"""/v1/webhook-endpoints: the resource, its subscriptions, its deliveries."""

import asyncio
import base64
import uuid
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from crm_api.settings import Settings
from crm_api.webhooks import service
from crm_api.webhooks.models import WebhookDelivery
from tests.builders import Tenant, assert_problem, create_contact, create_key
from tests.webhooks.conftest import create_endpoint

URL = "https://erp.example.com/hooks"


async def deliveries(
    client: AsyncClient, tenant: Tenant, endpoint_id: str, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/webhook-endpoints/{endpoint_id}/deliveries", params=params, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def delivered_types(client: AsyncClient, tenant: Tenant, endpoint_id: str) -> list[str]:
    return [d["event_type"] for d in await deliveries(client, tenant, endpoint_id)]


class TestCreate:
    async def test_created_with_a_secret_shown_once(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        response = await client.post(
            "/v1/webhook-endpoints",
            json={"url": URL, "event_types": ["contact.*", "contact.*", "*.deleted"]},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["event_types"] == ["contact.*", "*.deleted"]
        assert body["fields"] == []
        assert body["enabled"] is True
        assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) == 32
        assert response.headers["etag"] == '"1"'
        location = response.headers["location"]
        assert location.endswith(f"/v1/webhook-endpoints/{body['id']}")
        read = await client.get(location, headers=tenant.headers)
        assert "secret" not in read.json()
        events = await client.get(
            "/v1/events", params={"type": "webhook_endpoint.created"}, headers=tenant.headers
        )
        [announced] = events.json()["data"]
        assert announced["resource_id"] == body["id"]
        assert body["secret"] not in str(announced)

    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({"url": "ftp://example.com/x", "event_types": ["*"]}, ["body", "url"]),
            ({"url": "not a url", "event_types": ["*"]}, ["body", "url"]),
            ({"url": URL, "event_types": []}, ["body", "event_types"]),
            ({"url": URL, "event_types": ["contact.exploded"]}, ["body", "event_types", 0]),
            ({"url": URL, "event_types": ["contcat.*"]}, ["body", "event_types", 0]),
            ({"url": URL, "event_types": ["*.vanished"]}, ["body", "event_types", 0]),
            ({"url": URL, "event_types": ["contact"]}, ["body", "event_types", 0]),
            ({"url": URL, "event_types": ["*"], "fields": ["Bad Name"]}, ["body", "fields", 0]),
            ({"url": URL, "event_types": ["*"], "description": "  "}, ["body", "description"]),
            ({"url": URL, "event_types": ["*"], "secret": "whsec_x"}, ["body", "secret"]),
            ({"event_types": ["*"]}, ["body", "url"]),
            ({"url": "https://example.com:99999/x", "event_types": ["*"]}, ["body", "url"]),
        ],
    )
    async def test_invalid_bodies_are_422(
        self, client: AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[Any]
    ) -> None:
        response = await client.post("/v1/webhook-endpoints", json=body, headers=tenant.headers)
        assert_problem(response, 422, loc=loc)

    @pytest.mark.parametrize(
        "url",
        [
            "http://erp.example.com/hooks",
            "https://localhost/hooks",
            "https://crm.internal/hooks",
            "https://127.0.0.1/hooks",
            "https://10.1.2.3/hooks",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/hooks",
        ],
    )
    async def test_plain_http_and_private_addresses_are_refused_unless_allowed(
        self, client: AsyncClient, tenant: Tenant, url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        strict = Settings(database_url=None, webhooks_allow_insecure=False)
        monkeypatch.setattr(service, "get_settings", lambda: strict)
        response = await client.post(
            "/v1/webhook-endpoints", json={"url": url, "event_types": ["*"]}, headers=tenant.headers
        )
        assert_problem(response, 422, loc=["body", "url"])
        allowed = await client.post(
            "/v1/webhook-endpoints", json={"url": URL, "event_types": ["*"]}, headers=tenant.headers
        )
        assert allowed.status_code == 201
        path = f"/v1/webhook-endpoints/{allowed.json()['id']}"
        moved = await client.patch(path, json={"url": url}, headers=tenant.headers)
        assert_problem(moved, 422, loc=["body", "url"])
        assert (await client.get(path, headers=tenant.headers)).json()["url"] == URL

    async def test_an_idempotent_retry_returns_the_same_endpoint_and_secret(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        headers = {**tenant.headers, "Idempotency-Key": "endpoint-1"}
        body = {"url": URL, "event_types": ["*"]}
        first = await client.post("/v1/webhook-endpoints", json=body, headers=headers)
        again = await client.post("/v1/webhook-endpoints", json=body, headers=headers)
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        listed = await client.get("/v1/webhook-endpoints", headers=tenant.headers)
        assert len(listed.json()["data"]) == 1


class TestSubscriptions:
    async def test_patterns_choose_the_events(self, client: AsyncClient, tenant: Tenant) -> None:
        deletions = await create_endpoint(client, tenant, URL, event_types=["*.deleted"])
        contacts = await create_endpoint(client, tenant, URL, event_types=["contact.*"])
        exact = await create_endpoint(client, tenant, URL, event_types=["contact.created"])
        contact = await create_contact(client, tenant)
        await client.delete(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
        assert await delivered_types(client, tenant, deletions["id"]) == ["contact.deleted"]
        assert await delivered_types(client, tenant, contacts["id"]) == [
            "contact.created",
            "contact.deleted",
        ]
        assert await delivered_types(client, tenant, exact["id"]) == ["contact.created"]

    async def test_a_field_filter_hears_only_of_updates_to_its_fields(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        endpoint = await create_endpoint(
            client, tenant, URL, event_types=["contact.*"], fields=["lifecycle_stage"]
        )
        contact = await create_contact(client, tenant)
        path = f"/v1/contacts/{contact['id']}"
        await client.patch(path, json={"first_name": "Renamed"}, headers=tenant.headers)
        await client.patch(path, json={"lifecycle_stage": "customer"}, headers=tenant.headers)
        found = await deliveries(client, tenant, endpoint["id"])
        assert [d["event_type"] for d in found] == ["contact.created", "contact.updated"]
        event = await client.get(f"/v1/events/{found[1]['event_id']}", headers=tenant.headers)
        assert set(event.json()["changes"]) == {"lifecycle_stage"}

    async def test_a_disabled_endpoint_gets_nothing_new(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        endpoint = await create_endpoint(client, tenant, URL, enabled=False)
        await create_contact(client, tenant)
        assert await deliveries(client, tenant, endpoint["id"]) == []

    async def test_a_test_event_goes_to_that_endpoint_only_and_not_into_the_feed(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        target = await create_endpoint(client, tenant, URL)
        bystander = await create_endpoint(client, tenant, URL)
        response = await client.post(
            f"/v1/webhook-endpoints/{target['id']}/test", headers=tenant.headers
        )
        assert response.status_code == 202, response.text
        event_id = response.json()["event_id"]
        [delivery] = await deliveries(client, tenant, target["id"], event_id=event_id)
        assert delivery["event_type"] == "webhook.test"
        assert delivery["status"] == "pending"
        assert "webhook.test" not in await delivered_types(client, tenant, bystander["id"])
        feed = await client.get("/v1/events", headers=tenant.headers)
        assert event_id not in {e["id"] for e in feed.json()["data"]}


class TestUpdateAndDelete:
    async def test_patch_changes_what_is_sent_and_bumps_the_version(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        endpoint = await create_endpoint(client, tenant, URL, fields=["owner_id"])
        path = f"/v1/webhook-endpoints/{endpoint['id']}"
        response = await client.patch(
            path,
            json={"event_types": ["company.*"], "fields": None, "description": "ERP"},
            headers={**tenant.headers, "If-Match": '"1"'},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["event_types"], body["fields"], body["description"]) == (
            ["company.*"],
            [],
            "ERP",
        )
        assert body["version"] == 2
        assert response.headers["etag"] == '"2"'
        events = await client.get(
            "/v1/events", params={"type": "webhook_endpoint.updated"}, headers=tenant.headers
        )
        [announced] = events.json()["data"]
        assert announced["changes"]["event_types"] == {"old": ["*"], "new": ["company.*"]}

    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({"url": None}, ["body", "url"]),
            ({"event_types": None}, ["body", "event_types"]),
            ({"enabled": None}, ["body", "enabled"]),
            ({"event_types": ["nope.*"]}, ["body", "event_types", 0]),
        ],
    )
    async def test_invalid_patches_are_422_and_change_nothing(
        self, client: AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[Any]
    ) -> None:
        endpoint = await create_endpoint(client, tenant, URL)
        path = f"/v1/webhook-endpoints/{endpoint['id']}"
        assert_problem(await client.patch(path, json=body, headers=tenant.headers), 422, loc=loc)
        after = await client.get(path, headers=tenant.headers)
        assert after.json()["version"] == 1

    async def test_a_stale_if_match_is_412(self, client: AsyncClient, tenant: Tenant) -> None:
        endpoint = await create_endpoint(client, tenant, URL)
        path = f"/v1/webhook-endpoints/{endpoint['id']}"
        await client.patch(path, json={"description": "one"}, headers=tenant.headers)
        stale = {**tenant.headers, "If-Match": '"1"'}
        assert_problem(await client.patch(path, json={"description": "x"}, headers=stale), 412)
        assert_problem(await client.delete(path, headers=stale), 412)
        assert_problem(await client.post(f"{path}/rotate-secret", headers=stale), 412)
        not_modified = await client.get(path, headers={**tenant.headers, "If-None-Match": '"2"'})
        assert not_modified.status_code == 304

    async def test_disabling_and_deleting_drop_what_was_waiting(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        endpoint = await create_endpoint(client, tenant, URL, event_types=["contact.*"])
        path = f"/v1/webhook-endpoints/{endpoint['id']}"
        await create_contact(client, tenant)
        await client.patch(path, json={"enabled": False}, headers=tenant.headers)
        [waiting] = await deliveries(client, tenant, endpoint["id"])
        assert waiting["status"] == "failed"
        assert waiting["last_error"] == "The endpoint was disabled."

        other = await create_endpoint(client, tenant, URL, event_types=["contact.*"])
        await create_contact(client, tenant)
        deleted = await client.delete(
            f"/v1/webhook-endpoints/{other['id']}", headers=tenant.headers
        )
        assert deleted.status_code == 204
        gone = await client.get(f"/v1/webhook-endpoints/{other['id']}", headers=tenant.headers)
        assert_problem(gone, 404)
        events = await client.get(
            "/v1/events",
            params={"type": "webhook_endpoint.deleted", "resource_id": other["id"]},
            headers=tenant.headers,
        )
        assert len(events.json()["data"]) == 1
        for again in (
            await client.delete(f"/v1/webhook-endpoints/{other['id']}", headers=tenant.headers),
            await client.patch(
                f"/v1/webhook-endpoints/{other['id']}",
                json={"enabled": True},
                headers=tenant.headers,
            ),
            await client.post(
                f"/v1/webhook-endpoints/{other['id']}/recover",
                json={"since": "2020-01-01T00:00:00Z"},
                headers=tenant.headers,
            ),
        ):
            assert_problem(again, 404)

    async def test_rotation_gives_a_new_secret(self, client: AsyncClient, tenant: Tenant) -> None:
        endpoint = await create_endpoint(client, tenant, URL)
        response = await client.post(
            f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret",
            headers={**tenant.headers, "If-Match": '"1"'},
        )
        assert response.status_code == 200, response.text
        assert response.json()["secret"] != endpoint["secret"]
        assert response.json()["version"] == 2

    async def test_concurrent_patches_with_one_etag_let_one_through(
        self, live_client: AsyncClient, live_tenant: Tenant
    ) -> None:
        endpoint = await create_endpoint(live_client, live_tenant, URL)
        path = f"/v1/webhook-endpoints/{endpoint['id']}"
        headers = {**live_tenant.headers, "If-Match": '"1"'}
        try:
            responses = await asyncio.gather(
                *(
                    live_client.patch(path, json={"description": f"d{n}"}, headers=headers)
                    for n in range(4)
                )
            )
            assert sorted(r.status_code for r in responses) == [200, 412, 412, 412]
        finally:
            await live_client.delete(path, headers=live_tenant.headers)


async def delivery_as_if(
    client: AsyncClient,
    tenant: Tenant,
    sessionmaker: async_sessionmaker[AsyncSession],
    **state: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An endpoint and its delivery of a new contact, put in the state a worker would leave."""
    endpoint = await create_endpoint(client, tenant, URL, event_types=["contact.created"])
    await create_contact(client, tenant)
    [delivery] = await deliveries(client, tenant, endpoint["id"])
    async with sessionmaker() as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == uuid.UUID(delivery["id"]))
            .values(**state)
        )
        await session.commit()
    return endpoint, delivery


class TestDeliveries:
    async def test_retry_puts_a_finished_delivery_back_in_the_queue(
        self,
        client: AsyncClient,
        tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        endpoint, delivery = await delivery_as_if(
            client, tenant, sessionmaker, status="failed", next_attempt_at=None, attempt_count=10
        )
        path = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{delivery['id']}"
        response = await client.post(f"{path}/retry", headers=tenant.headers)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "pending"
        assert response.json()["completed_at"] is None
        single = await client.get(path, headers=tenant.headers)
        assert single.json() == response.json()
        assert [
            d["id"] for d in await deliveries(client, tenant, endpoint["id"], status="pending")
        ] == [delivery["id"]]

    async def test_retry_of_a_delivery_being_sent_is_409(
        self,
        client: AsyncClient,
        tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        in_an_hour = func.now() + timedelta(hours=1)
        endpoint, delivery = await delivery_as_if(
            client, tenant, sessionmaker, status="delivering", next_attempt_at=in_an_hour
        )
        path = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{delivery['id']}/retry"
        assert_problem(await client.post(path, headers=tenant.headers), 409)

    async def test_retry_and_test_on_a_disabled_endpoint_are_409(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        endpoint = await create_endpoint(client, tenant, URL, event_types=["contact.created"])
        await create_contact(client, tenant)
        [delivery] = await deliveries(client, tenant, endpoint["id"])
        path = f"/v1/webhook-endpoints/{endpoint['id']}"
        await client.patch(path, json={"enabled": False}, headers=tenant.headers)
        retry = await client.post(
            f"{path}/deliveries/{delivery['id']}/retry", headers=tenant.headers
        )
        assert_problem(retry, 409)
        assert_problem(await client.post(f"{path}/test", headers=tenant.headers), 409)

    async def test_a_delivery_is_found_under_its_own_endpoint_only(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        first = await create_endpoint(client, tenant, URL, event_types=["contact.created"])
        second = await create_endpoint(client, tenant, URL, event_types=["contact.created"])
        await create_contact(client, tenant)
        [delivery] = await deliveries(client, tenant, first["id"])
        wrong = f"/v1/webhook-endpoints/{second['id']}/deliveries/{delivery['id']}"
        assert_problem(await client.get(wrong, headers=tenant.headers), 404)
        assert_problem(await client.post(f"{wrong}/retry", headers=tenant.headers), 404)

    @pytest.mark.parametrize(
        ("params", "loc"),
        [
            ({"status": "lost"}, ["query", "status"]),
            ({"sort": "status"}, ["query", "sort"]),
            ({"limit": 0}, ["query", "limit"]),
        ],
    )
    async def test_bad_list_parameters_are_422(
        self, client: AsyncClient, tenant: Tenant, params: dict[str, Any], loc: list[str]
    ) -> None:
        endpoint = await create_endpoint(client, tenant, URL)
        response = await client.get(
            f"/v1/webhook-endpoints/{endpoint['id']}/deliveries",
            params=params,
            headers=tenant.headers,
        )
        assert_problem(response, 422, loc=loc)


class TestAuth:
    async def test_needs_a_key_and_the_webhooks_scopes(
        self,
        client: AsyncClient,
        tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        endpoint = await create_endpoint(client, tenant, URL)
        path = f"/v1/webhook-endpoints/{endpoint['id']}"
        assert_problem(await client.get("/v1/webhook-endpoints"), 401)
        assert_problem(await client.post(f"{path}/test"), 401)
        contacts_only = await create_key(sessionmaker, tenant, [Scope.contacts_write])
        assert_problem(await client.get(path, headers=contacts_only.headers), 403)
        reader = await create_key(sessionmaker, tenant, [Scope.webhooks_read])
        assert (await client.get(path, headers=reader.headers)).status_code == 200
        assert (await client.get(f"{path}/deliveries", headers=reader.headers)).status_code == 200
        for response in (
            await client.patch(path, json={"description": "x"}, headers=reader.headers),
            await client.delete(path, headers=reader.headers),
            await client.post(f"{path}/rotate-secret", headers=reader.headers),
            await client.post(f"{path}/test", headers=reader.headers),
            await client.post(
                "/v1/webhook-endpoints",
                json={"url": URL, "event_types": ["*"]},
                headers=reader.headers,
            ),
        ):
            assert_problem(response, 403)

    async def test_another_workspaces_endpoint_is_404_everywhere(
        self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        theirs = await create_endpoint(client, other_tenant, URL, event_types=["contact.created"])
        await create_contact(client, other_tenant)
        [delivery] = await deliveries(client, other_tenant, theirs["id"])
        path = f"/v1/webhook-endpoints/{theirs['id']}"
        for response in (
            await client.get(path, headers=tenant.headers),
            await client.patch(path, json={"description": "x"}, headers=tenant.headers),
            await client.delete(path, headers=tenant.headers),
            await client.post(f"{path}/rotate-secret", headers=tenant.headers),
            await client.post(f"{path}/test", headers=tenant.headers),
            await client.get(f"{path}/deliveries", headers=tenant.headers),
            await client.get(f"{path}/deliveries/{delivery['id']}", headers=tenant.headers),
            await client.post(f"{path}/deliveries/{delivery['id']}/retry", headers=tenant.headers),
        ):
            assert_problem(response, 404)
        mine = await client.get("/v1/webhook-endpoints", headers=tenant.headers)
        assert theirs["id"] not in {e["id"] for e in mine.json()["data"]}
        unchanged = await client.get(path, headers=other_tenant.headers)
        assert unchanged.json()["version"] == 1


class TestRecover:
    async def test_failed_deliveries_in_the_range_go_back_in_the_queue(
        self,
        client: AsyncClient,
        tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        endpoint, failed = await delivery_as_if(
            client, tenant, sessionmaker, status="failed", next_attempt_at=None
        )
        await create_contact(client, tenant)  # a second delivery, still pending
        path = f"/v1/webhook-endpoints/{endpoint['id']}/recover"
        before = await client.post(
            path,
            json={"since": "2020-01-01T00:00:00Z", "until": failed["created_at"]},
            headers=tenant.headers,
        )
        assert before.status_code == 202, before.text
        assert before.json() == {"requeued": 0}  # `until` is exclusive
        response = await client.post(
            path, json={"since": failed["created_at"]}, headers=tenant.headers
        )
        assert response.json() == {"requeued": 1}
        statuses = {d["id"]: d["status"] for d in await deliveries(client, tenant, endpoint["id"])}
        assert statuses[failed["id"]] == "pending"
        assert set(statuses.values()) == {"pending"}

    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({}, ["body", "since"]),
            ({"since": "yesterday"}, ["body", "since"]),
            ({"since": "2026-11-25T00:00:00Z", "until": "2026-11-24T00:00:00Z"}, ["body"]),
            ({"since": "2026-11-25T00:00:00Z", "status": "failed"}, ["body", "status"]),
        ],
    )
    async def test_a_bad_range_is_422(
        self, client: AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[str]
    ) -> None:
        endpoint = await create_endpoint(client, tenant, URL)
        response = await client.post(
            f"/v1/webhook-endpoints/{endpoint['id']}/recover", json=body, headers=tenant.headers
        )
        assert_problem(response, 422, loc=loc)

    async def test_a_disabled_endpoint_is_409_and_others_are_404(
        self,
        client: AsyncClient,
        tenant: Tenant,
        other_tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        body = {"since": "2020-01-01T00:00:00Z"}
        endpoint = await create_endpoint(client, tenant, URL, enabled=False)
        path = f"/v1/webhook-endpoints/{endpoint['id']}/recover"
        assert_problem(await client.post(path, json=body, headers=tenant.headers), 409)
        assert_problem(await client.post(path, json=body, headers=other_tenant.headers), 404)
        assert_problem(await client.post(path, json=body), 401)
        reader = await create_key(sessionmaker, tenant, [Scope.webhooks_read])
        assert_problem(await client.post(path, json=body, headers=reader.headers), 403)
