"""The dispatcher against a real receiver on loopback: signatures checked by the
`standardwebhooks` package's own verifier, retries, ordering, give-ups and disabling."""

import asyncio
import time
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_api.app import create_app
from crm_api.contacts.schemas import ContactCreate
from crm_api.contacts.service import create_contact as create_contact_in
from crm_api.core.auth import Principal
from crm_api.core.idempotency import IdempotencyRecord
from crm_api.webhooks.models import Event
from tests.builders import Tenant, create_contact
from tests.conftest import make_client
from tests.webhooks.conftest import (
    create_contacts,
    create_endpoint,
    eventually,
    fast_settings,
    make_dispatcher,
    running,
)
from tests.webhooks.receiver import Received, Receiver, answering_after


def of_type(receiver: Receiver, type: str) -> list[Received]:
    with receiver.lock:
        return [r for r in receiver.received if r.payload["type"] == type]


async def deliveries(client: AsyncClient, tenant: Tenant, endpoint_id: str, **params: Any) -> Any:
    response = await client.get(
        f"/v1/webhook-endpoints/{endpoint_id}/deliveries",
        params={"limit": 500, **params},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def contact_delivery(
    client: AsyncClient, tenant: Tenant, endpoint_id: str
) -> dict[str, Any] | None:
    """The endpoint's one `contact.created` delivery, once it exists."""
    found = await deliveries(client, tenant, endpoint_id, event_type="contact.created")
    return found[0] if found else None


async def attempted_once(client: AsyncClient, tenant: Tenant, endpoint_id: str) -> None:
    async def attempted() -> bool:
        delivery = await contact_delivery(client, tenant, endpoint_id)
        return bool(delivery and delivery["attempts"])

    await eventually(attempted)


async def disabled(client: AsyncClient, tenant: Tenant, endpoint_id: str) -> dict[str, Any]:
    """The endpoint, once a worker has disabled it."""

    async def is_disabled() -> bool:
        response = await client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=tenant.headers)
        return response.json()["enabled"] is False

    await eventually(is_disabled)
    response = await client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=tenant.headers)
    return dict(response.json())


def attempts_counted(result: str) -> float:
    """Delivery attempts this process has counted with this result (core/telemetry.py)."""
    found = REGISTRY.get_sample_value("crm_webhook_delivery_attempts_total", {"result": result})
    return found or 0.0


async def test_a_delivery_verifies_with_the_standard_webhooks_library(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    async with running(make_dispatcher(live_app, engine)):
        contact = await create_contact(live_client, live_tenant, email="ada@example.com")
        await receiver.wait_for(
            lambda got: any(r.payload["type"] == "contact.created" for r in got)
        )
    [request] = of_type(receiver, "contact.created")
    payload = request.verified(live_endpoint["secret"])
    assert payload["data"] == contact
    assert request.headers["webhook-id"] == payload["id"]
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    event = (
        await live_client.get(f"/v1/events/{payload['id']}", headers=live_tenant.headers)
    ).json()
    assert payload["sequence"] == event["sequence"]
    assert payload["timestamp"].endswith("Z")

    [delivery] = await deliveries(
        live_client, live_tenant, live_endpoint["id"], event_type="contact.created"
    )
    assert delivery["status"] == "succeeded"
    assert delivery["attempt_count"] == 1
    [attempt] = delivery["attempts"]
    assert attempt["succeeded"] is True
    assert attempt["response_status"] == 200
    assert attempt["response_body"] == '{"status": 200}'
    assert attempt["duration_ms"] >= 0


async def test_delivered_when_the_write_commits_and_not_before(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    principal = Principal(live_tenant.workspace_id, live_tenant.workspace_id, frozenset())
    async with running(make_dispatcher(live_app, engine)), live_app.state.sessionmaker() as s:
        await create_contact_in(s, principal, ContactCreate(first_name="Pending"))
        await asyncio.sleep(0.5)  # the worker polls (every 0.05 s) and listens meanwhile
        assert of_type(receiver, "contact.created") == []
        await s.commit()
        await receiver.wait_for(
            lambda got: any(r.payload["type"] == "contact.created" for r in got)
        )
    [request] = of_type(receiver, "contact.created")
    assert request.payload["data"]["first_name"] == "Pending"


async def test_a_commit_wakes_a_sleeping_worker(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    """With an hour between polls, only the NOTIFY sent at commit can bring the event over."""
    async with running(make_dispatcher(live_app, engine, worker_poll_seconds=3600)):
        await receiver.wait_for(lambda got: len(got) >= 1)  # the endpoint's own creation
        await asyncio.sleep(0.2)  # the worker has gone to sleep
        await create_contact(live_client, live_tenant, first_name="Woken")
        await receiver.wait_for(
            lambda got: any(r.payload["type"] == "contact.created" for r in got), within=10
        )


async def test_a_failing_event_is_retried_until_it_succeeds_without_holding_back_others(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    failures: Counter[str] = Counter()

    def fail_first_three_for_grace(request: Received) -> int:
        if request.payload["data"].get("first_name") == "Grace" and failures["grace"] < 3:
            failures["grace"] += 1
            return 500
        return 200

    receiver.responder = fail_first_three_for_grace
    dispatcher = make_dispatcher(live_app, engine, webhook_retry_delays=[0.4] * 9)
    async with running(dispatcher):
        grace = await create_contact(live_client, live_tenant, first_name="Grace")
        later = [
            await create_contact(live_client, live_tenant, first_name=f"L{n}") for n in range(3)
        ]
        await receiver.wait_for(
            lambda got: (
                sum(
                    r.payload["type"] == "contact.created"
                    and r.payload["data"]["id"] == grace["id"]
                    for r in got
                )
                >= 4
            )
        )
    created = of_type(receiver, "contact.created")
    grace_attempts = [r for r in created if r.payload["data"]["id"] == grace["id"]]
    assert len(grace_attempts) == 4
    assert len({r.headers["webhook-id"] for r in grace_attempts}) == 1  # one message, retried
    others = [r for r in created if r.payload["data"]["id"] != grace["id"]]
    assert [r.payload["data"]["id"] for r in others] == [c["id"] for c in later]
    # The later events arrived before Grace's got through.
    assert max(r.at for r in others) < grace_attempts[-1].at

    [delivery] = await deliveries(
        live_client, live_tenant, live_endpoint["id"], event_id=grace_attempts[0].payload["id"]
    )
    assert delivery["status"] == "succeeded"
    assert delivery["attempt_count"] == 4
    assert [a["response_status"] for a in delivery["attempts"]] == [500, 500, 500, 200]
    endpoint = await live_client.get(
        f"/v1/webhook-endpoints/{live_endpoint['id']}", headers=live_tenant.headers
    )
    assert endpoint.json()["failing_since"] is None  # the success ended the run of failures


async def test_events_go_out_in_sequence_order_when_nothing_fails(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    for n in range(15):
        await create_contact(live_client, live_tenant, first_name=f"O{n}")
    async with running(make_dispatcher(live_app, engine, worker_batch_size=4)):
        await receiver.wait_for(
            lambda got: sum(r.payload["type"] == "contact.created" for r in got) >= 15
        )
    sequences = [r.payload["sequence"] for r in receiver.received]
    assert sequences == sorted(sequences)
    assert len(sequences) == len(set(sequences))


async def test_a_delivery_that_keeps_failing_is_marked_failed_after_the_last_attempt(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    receiver.responder = lambda request: 503
    results = ("succeeded", "retrying", "failed", "lease_lost")
    counted_before = {result: attempts_counted(result) for result in results}
    dispatcher = make_dispatcher(live_app, engine, webhook_retry_delays=[0.05, 0.05])
    async with running(dispatcher):
        contact = await create_contact(live_client, live_tenant)

        async def gave_up() -> bool:
            delivery = await contact_delivery(live_client, live_tenant, live_endpoint["id"])
            return delivery is not None and delivery["status"] == "failed"

        await eventually(gave_up)
    # Every attempt is in the metrics, by what it led to.
    counted = {result: attempts_counted(result) - counted_before[result] for result in results}
    assert sum(counted.values()) == len(receiver.received)
    assert counted["failed"] >= 1
    assert counted["retrying"] >= 2
    assert counted["succeeded"] == 0
    [delivery] = await deliveries(
        live_client, live_tenant, live_endpoint["id"], event_type="contact.created"
    )
    assert delivery["attempt_count"] == 3
    assert delivery["next_attempt_at"] is None
    assert delivery["completed_at"] is not None
    assert delivery["last_response_status"] == 503
    assert [r.payload["data"]["id"] for r in of_type(receiver, "contact.created")] == [
        contact["id"]
    ] * 3


async def test_retry_after_is_honoured(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    calls: Counter[str] = Counter()

    def throttle_once(request: Received) -> int | tuple[int, dict[str, str]]:
        calls[request.headers["webhook-id"]] += 1
        return (429, {"Retry-After": "1"}) if calls[request.headers["webhook-id"]] == 1 else 200

    receiver.responder = throttle_once
    async with running(make_dispatcher(live_app, engine)):
        await create_contact(live_client, live_tenant)
        await receiver.wait_for(
            lambda got: len([r for r in got if r.payload["type"] == "contact.created"]) >= 2
        )
    first, second = of_type(receiver, "contact.created")
    assert second.at - first.at >= 0.95  # not the 0.1 s the schedule says


async def test_410_gone_disables_the_endpoint_and_announces_it(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
) -> None:
    gone = await create_endpoint(live_client, live_tenant, receiver.url, event_types=["contact.*"])
    receiver.responder = lambda request: 410
    async with running(make_dispatcher(live_app, engine)):
        await create_contact(live_client, live_tenant)
        await create_contact(live_client, live_tenant)

        endpoint = await disabled(live_client, live_tenant, gone["id"])
    assert endpoint["disabled_reason"] == "The receiver answered 410 Gone."
    statuses = {d["status"] for d in await deliveries(live_client, live_tenant, gone["id"])}
    assert statuses == {"failed"}  # nothing left waiting for an endpoint that is gone
    events = await live_client.get(
        "/v1/events",
        params={"type": "webhook_endpoint.disabled", "resource_id": gone["id"]},
        headers=live_tenant.headers,
    )
    [announced] = events.json()["data"]
    assert announced["data"]["enabled"] is False


async def test_an_endpoint_failing_for_too_long_is_disabled(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    receiver.responder = lambda request: 500
    # 0.3 s of failures stands in for five days of them.
    dispatcher = make_dispatcher(live_app, engine, webhook_disable_after_hours=0.3 / 3600)
    endpoint_url = f"/v1/webhook-endpoints/{live_endpoint['id']}"
    async with running(dispatcher):
        await create_contact(live_client, live_tenant)

        endpoint = await disabled(live_client, live_tenant, live_endpoint["id"])
    assert endpoint["disabled_reason"].startswith("Every attempt since ")
    assert endpoint["failing_since"] is not None
    # Enabling it again starts afresh.
    enabled = await live_client.patch(
        endpoint_url, json={"enabled": True}, headers=live_tenant.headers
    )
    assert enabled.json()["failing_since"] is None
    assert enabled.json()["disabled_reason"] is None


async def test_a_rotated_secret_signs_beside_the_new_one(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    rotated = await live_client.post(
        f"/v1/webhook-endpoints/{live_endpoint['id']}/rotate-secret", headers=live_tenant.headers
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != live_endpoint["secret"]
    async with running(make_dispatcher(live_app, engine)):
        await create_contact(live_client, live_tenant)
        await receiver.wait_for(
            lambda got: any(r.payload["type"] == "contact.created" for r in got)
        )
    [request] = of_type(receiver, "contact.created")
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    request.verified(live_endpoint["secret"])  # a receiver not yet switched over
    request.verified(new_secret)  # a receiver already switched


async def test_a_private_address_is_refused_at_delivery_unless_insecure_is_allowed(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    strict = make_dispatcher(live_app, engine, webhooks_allow_insecure=False)
    async with running(strict):
        await create_contact(live_client, live_tenant)

        await attempted_once(live_client, live_tenant, live_endpoint["id"])
    [delivery] = await deliveries(
        live_client, live_tenant, live_endpoint["id"], event_type="contact.created"
    )
    assert "private or reserved address" in delivery["attempts"][0]["error"]
    assert of_type(receiver, "contact.created") == []


async def test_a_receiver_that_does_not_answer_in_time_is_a_failed_attempt(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    receiver.responder = answering_after(1.5)
    dispatcher = make_dispatcher(
        live_app, engine, webhook_timeout_seconds=0.5, webhook_retry_delays=[60] * 9
    )
    async with running(dispatcher):
        await create_contact(live_client, live_tenant)

        await attempted_once(live_client, live_tenant, live_endpoint["id"])
    [delivery] = await deliveries(
        live_client, live_tenant, live_endpoint["id"], event_type="contact.created"
    )
    assert delivery["status"] == "pending"
    assert delivery["attempts"][0]["error"] == "No response within 0.5 s."


async def test_two_workers_on_one_queue_never_send_an_event_twice(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    await create_contacts(live_client, live_tenant, 300, "TW")
    workers = [make_dispatcher(live_app, engine, worker_batch_size=20) for _ in range(2)]
    async with running(*workers):
        await receiver.wait_for(
            lambda got: sum(r.payload["type"] == "contact.created" for r in got) >= 300
        )
        await asyncio.sleep(0.5)  # a duplicate would arrive meanwhile
    ids = [r.headers["webhook-id"] for r in of_type(receiver, "contact.created")]
    assert len(ids) == 300
    assert len(set(ids)) == 300


async def test_overlapping_sends_to_one_endpoint_deliver_each_event_once(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    receiver.responder = answering_after(0.01)
    await create_contacts(live_client, live_tenant, 60, "OV")
    dispatcher = make_dispatcher(live_app, engine, webhook_in_flight_per_endpoint=8)

    async def statuses() -> set[str]:
        listed = await deliveries(live_client, live_tenant, live_endpoint["id"])
        return {d["status"] for d in listed}

    async def settled() -> bool:
        return not {"pending", "delivering"} & await statuses()

    async with running(dispatcher):
        await receiver.wait_for(
            lambda got: sum(r.payload["type"] == "contact.created" for r in got) >= 60
        )
        # The last answers may still be being recorded when the receiver has them all.
        await eventually(settled)
    ids = [r.headers["webhook-id"] for r in of_type(receiver, "contact.created")]
    assert sorted(ids) == sorted(set(ids))
    assert len(ids) == 60
    assert await statuses() == {"succeeded"}


async def test_maintenance_prunes_old_events_and_expired_idempotency_records(
    live_app: FastAPI, engine: AsyncEngine, live_client: AsyncClient, live_tenant: Tenant
) -> None:
    old = await create_contact(live_client, live_tenant, first_name="Old")
    fresh = await create_contact(live_client, live_tenant, first_name="Fresh")
    for key in ("old-key", "fresh-key"):
        response = await live_client.post(
            "/v1/contacts",
            json={"first_name": key},
            headers={**live_tenant.headers, "Idempotency-Key": key},
        )
        assert response.status_code == 201
    async with live_app.state.sessionmaker.begin() as session:
        await session.execute(
            update(Event)
            .where(Event.workspace_id == live_tenant.workspace_id, Event.resource_id == old["id"])
            .values(occurred_at=func.now() - timedelta(days=31))
        )
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == "old-key")
            .values(created_at=func.now() - timedelta(hours=25))
        )
    await make_dispatcher(live_app, engine)._maintain()

    async with live_app.state.sessionmaker() as session:
        resources = set(
            (
                await session.scalars(
                    select(Event.resource_id).where(Event.workspace_id == live_tenant.workspace_id)
                )
            ).all()
        )
        keys = set(
            (
                await session.scalars(
                    select(IdempotencyRecord.key).where(
                        IdempotencyRecord.workspace_id == live_tenant.workspace_id
                    )
                )
            ).all()
        )
    assert uuid.UUID(old["id"]) not in resources
    assert uuid.UUID(fresh["id"]) in resources
    assert keys == {"fresh-key"}


async def test_the_server_can_deliver_webhooks_itself(
    database_url: str, live_tenant: Tenant, receiver: Receiver
) -> None:
    """`crm-api serve --with-worker` (what `make serve` runs): the dispatcher lives and stops
    with the app."""
    app = create_app(fast_settings(run_dispatcher=True), database_url=database_url)
    async with app.router.lifespan_context(app), make_client(app) as client:
        endpoint = await create_endpoint(client, live_tenant, receiver.url)
        await create_contact(client, live_tenant, first_name="Served")
        await receiver.wait_for(
            lambda got: any(r.payload["type"] == "contact.created" for r in got)
        )
        await client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=live_tenant.headers)
    [request] = of_type(receiver, "contact.created")
    assert request.verified(endpoint["secret"])["data"]["first_name"] == "Served"


async def test_what_the_lease_cannot_cover_is_handed_back_untried(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    receiver.responder = answering_after(0.4)
    await create_contacts(live_client, live_tenant, 12, "LS")
    # Sends stop once less than timeout + 2 s of the 6 s lease is left: after about 3 s.
    dispatcher = make_dispatcher(
        live_app, engine, webhook_timeout_seconds=1, worker_lease_seconds=6
    )
    try:
        # The endpoint's own creation and 12 contacts (and whatever else is due).
        assert await dispatcher.run_once() >= 13
    finally:
        assert dispatcher.client is not None
        await dispatcher.client.aclose()
    found = await deliveries(live_client, live_tenant, live_endpoint["id"])
    sent = [d for d in found if d["status"] == "succeeded"]
    handed_back = [d for d in found if d["status"] == "pending"]
    assert sent
    assert handed_back
    assert len(sent) + len(handed_back) == 13
    assert {d["attempt_count"] for d in handed_back} == {0}  # not counted as a try
    assert {(d["attempt_count"], len(d["attempts"])) for d in sent} == {(1, 1)}


async def test_recovery_after_an_outage_sends_what_failed_in_order(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    receiver.responder = lambda request: 503
    async with running(make_dispatcher(live_app, engine, webhook_retry_delays=[0.05])):
        await create_contacts(live_client, live_tenant, 5, "RC")

        async def all_failed() -> bool:
            found = await deliveries(
                live_client, live_tenant, live_endpoint["id"], event_type="contact.created"
            )
            return len(found) == 5 and {d["status"] for d in found} == {"failed"}

        await eventually(all_failed)
        receiver.responder = lambda request: 200
        with receiver.lock:
            receiver.received.clear()
        response = await live_client.post(
            f"/v1/webhook-endpoints/{live_endpoint['id']}/recover",
            json={"since": live_endpoint["created_at"]},
            headers=live_tenant.headers,
        )
        assert response.json() == {"requeued": 6}  # and the endpoint's own creation
        await receiver.wait_for(lambda got: len(got) >= 6)
    sequences = [r.payload["sequence"] for r in receiver.received]
    assert sequences == sorted(sequences)
    assert {
        d["status"] for d in await deliveries(live_client, live_tenant, live_endpoint["id"])
    } == {"succeeded"}


async def test_a_long_answer_is_kept_to_its_first_4_kib_and_a_redirect_is_a_failure(
    live_app: FastAPI,
    engine: AsyncEngine,
    live_client: AsyncClient,
    live_tenant: Tenant,
    receiver: Receiver,
    live_endpoint: dict[str, Any],
) -> None:
    receiver.reply = "é".encode() * 5000  # 10,000 bytes
    receiver.responder = lambda request: (307, {"Location": "http://127.0.0.1:9/elsewhere"})
    async with running(make_dispatcher(live_app, engine, webhook_retry_delays=[60] * 9)):
        await create_contact(live_client, live_tenant)
        await attempted_once(live_client, live_tenant, live_endpoint["id"])
    delivery = await contact_delivery(live_client, live_tenant, live_endpoint["id"])
    assert delivery is not None
    assert delivery["status"] == "pending"  # retried later: only 2xx is success
    [attempt] = delivery["attempts"]
    assert attempt["succeeded"] is False
    assert attempt["response_status"] == 307
    assert attempt["response_body"] == "é" * 2048  # 4,096 bytes, cut on a character boundary
    assert len(of_type(receiver, "contact.created")) == 1  # the redirect was not followed
