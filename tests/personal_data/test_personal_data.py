"""A person's data: the export holds everything we keep on them; erasure leaves no trace of
their personal fields anywhere in the workspace's tables (events, stored responses and the
audit log included) while their orders and answers, and so the metrics, stay as they were."""

import asyncio
from typing import Any

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.roles import Role
from tests.builders import (
    Tenant,
    assert_problem,
    create_company,
    create_contact,
    create_deal,
    create_key,
    create_pipeline,
    create_ticket,
    create_user,
    workspace_tables,
)

EMAIL = "ada.private@example.org"
SURNAME = "Byronova"


async def _post(client: AsyncClient, tenant: Tenant, path: str, body: Any, **headers: str) -> Any:
    answer = await client.post(path, json=body, headers={**tenant.headers, **headers})
    assert answer.status_code in (200, 201), (path, answer.text)
    return answer.json()


async def _person(client: AsyncClient, tenant: Tenant) -> dict[str, Any]:
    """A contact with something of everything, one merged contact, and their ids."""
    company = await create_company(client, tenant)
    contact = await _post(
        client, tenant, "/v1/contacts",
        {"first_name": "Ada", "last_name": SURNAME, "email": EMAIL, "phone": "+14155550123",
         "company_id": company["id"], "external_id": "P-1"},
        **{"Idempotency-Key": "create-ada"},
    )  # fmt: skip
    twin = await create_contact(client, tenant, first_name="Ada", email="ada.old@example.org")
    read = await client.get(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
    await _post(
        client, tenant, f"/v1/contacts/{contact['id']}/merge",
        {"merge_ids": [twin["id"]], "rule": "survivor"}, **{"If-Match": read.headers["etag"]},
    )  # fmt: skip
    user = await create_user(client, tenant)
    interaction = await _post(
        client, tenant, "/v1/interactions",
        {"channel": "call", "contact_id": contact["id"], "occurred_at": "2026-11-30T14:05:00Z",
         "subject": f"Call with {SURNAME}", "summary": f"Reach her at {EMAIL}"},
    )  # fmt: skip
    ticket = await create_ticket(
        client, tenant, contact["id"], subject=f"{SURNAME}: refund", description=EMAIL
    )
    comment = await _post(
        client, tenant, f"/v1/tickets/{ticket['id']}/comments",
        {"body": f"Hi, {SURNAME} here", "kind": "reply", "author_contact_id": contact["id"]},
    )  # fmt: skip
    stage = (await create_pipeline(client, tenant))["stages"][0]["id"]
    deal = await create_deal(client, tenant, stage, contact_ids=[contact["id"]])
    order = await _post(
        client, tenant, "/v1/orders",
        {"contact_id": contact["id"], "currency": "EUR", "total": "120.00", "status": "paid",
         "ordered_at": "2026-11-28T10:15:00Z"},
    )  # fmt: skip
    feedback = await _post(
        client, tenant, "/v1/feedback",
        {"contact_id": contact["id"], "kind": "nps", "score": 9,
         "responded_at": "2026-11-30T09:12:00Z", "comment": f"{SURNAME} loves it"},
    )  # fmt: skip
    segment = await _post(client, tenant, "/v1/segments", {"name": "VIP", "kind": "static"})
    await _post(
        client, tenant, f"/v1/segments/{segment['id']}/members", {"contact_ids": [contact["id"]]}
    )
    return {
        "contact": contact["id"], "twin": twin["id"], "user": user["id"],
        "interaction": interaction["id"], "ticket": ticket["id"], "comment": comment["id"],
        "deal": deal["id"], "order": order["id"], "feedback": feedback["id"],
        "segment": segment["id"],
    }  # fmt: skip


async def test_the_export_holds_everything_on_the_person(
    client: AsyncClient, tenant: Tenant
) -> None:
    ids = await _person(client, tenant)
    answer = await client.get(f"/v1/contacts/{ids['contact']}/export", headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    export = answer.json()
    assert export["contact"]["email"] == EMAIL
    assert [c["id"] for c in export["merged_contacts"]] == [ids["twin"]]
    assert export["merged_contacts"][0]["email"] == "ada.old@example.org"
    for key, name in (
        ("interactions", "interaction"), ("tickets", "ticket"), ("ticket_comments", "comment"),
        ("deals", "deal"), ("orders", "order"), ("feedback", "feedback"),
        ("segments", "segment"),
    ):  # fmt: skip
        assert [r["id"] for r in export[key]] == [ids[name]], key
    assert export["metrics"]["order_count"] == 1
    assert {e["action"] for e in export["audit_log"]} >= {"created", "updated", "merged"}


async def _metrics(client: AsyncClient, tenant: Tenant, contact_id: str) -> list[Any]:
    paths = [f"/v1/contacts/{contact_id}/metrics", "/v1/metrics/nps", "/v1/metrics/rfm"]
    answers = [await client.get(path, headers=tenant.headers) for path in paths]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return [a.json() for a in answers]


async def _traces(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, *needles: str
) -> list[str]:
    """Every workspace table row that still holds one of these strings, as text."""
    found = []
    async with sessionmaker() as session:
        for table in await workspace_tables(session):
            for needle in needles:
                row = text(
                    f"SELECT count(*) FROM {table} t WHERE t.workspace_id = :w AND "
                    "(t::text ILIKE :like OR t::text ILIKE :hex)"
                )
                params = {
                    "w": tenant.workspace_id,
                    "like": f"%{needle}%",
                    "hex": f"%{needle.encode().hex()}%",  # bytea columns render as hex
                }
                if (await session.execute(row, params)).scalar_one():
                    found.append(f"{table}: {needle}")
    return found


async def test_erasure_leaves_no_trace_and_keeps_the_metrics(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ids = await _person(client, tenant)
    needles = (EMAIL, SURNAME, "ada.old@example.org", "4155550123")
    assert await _traces(sessionmaker, tenant, *needles)  # there is something to erase
    before = await _metrics(client, tenant, ids["contact"])
    erased = await client.post(f"/v1/contacts/{ids['contact']}/erase", headers=tenant.headers)
    assert erased.status_code == 200, erased.text
    contact = erased.json()
    assert contact["erased_at"] is not None
    assert (contact["first_name"], contact["email"], contact["external_id"]) == (None,) * 3
    assert await _traces(sessionmaker, tenant, *needles) == []
    after = await _metrics(client, tenant, ids["contact"])
    for figures in (*before, *after):  # when they were computed is all that differs
        figures.pop("as_of", None)
    assert after == before
    order = await client.get(f"/v1/orders/{ids['order']}", headers=tenant.headers)
    assert order.json()["total"] == "120.00"
    feedback = await client.get(f"/v1/feedback/{ids['feedback']}", headers=tenant.headers)
    assert (feedback.json()["score"], feedback.json()["comment"]) == (9, None)
    events = await client.get(
        "/v1/events", params={"resource_id": ids["contact"]}, headers=tenant.headers
    )
    assert events.json()["data"][-1]["type"] == "contact.erased"
    audit = await client.get(
        "/v1/audit-log", params={"resource_id": ids["contact"]}, headers=tenant.headers
    )
    assert audit.json()["data"][0]["action"] == "erased"
    assert all(entry["changes"] is None for entry in audit.json()["data"])
    again = await client.post(f"/v1/contacts/{ids['contact']}/erase", headers=tenant.headers)
    assert again.status_code == 200


async def test_only_admins_of_the_workspace_export_or_erase(
    client: AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    contact = await create_contact(client, tenant, email=EMAIL)
    export, erase = f"/v1/contacts/{contact['id']}/export", f"/v1/contacts/{contact['id']}/erase"
    assert_problem(await client.get(export), 401)
    assert_problem(await client.post(erase), 401)
    manager = await create_key(sessionmaker, tenant, role=Role.manager)
    assert_problem(await client.get(export, headers=manager.headers), 403)
    assert_problem(await client.post(erase, headers=manager.headers), 403)
    assert_problem(await client.get(export, headers=other_tenant.headers), 404)
    assert_problem(await client.post(erase, headers=other_tenant.headers), 404)
    unknown = "/v1/contacts/01a23b42-0fbf-769f-9633-e75962adefae"
    assert_problem(await client.post(f"{unknown}/erase", headers=tenant.headers), 404)
    assert_problem(await client.get(f"{unknown}/export", headers=tenant.headers), 404)
    assert_problem(await client.get("/v1/contacts/nope/export", headers=tenant.headers), 422)
    kept = await client.get(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
    assert kept.json()["email"] == EMAIL


async def test_an_erasure_and_an_update_at_once_both_finish_in_some_order(
    live_client: AsyncClient, live_tenant: Tenant
) -> None:
    contact = await create_contact(live_client, live_tenant, email=EMAIL)
    path = f"/v1/contacts/{contact['id']}"
    erased, patched = await asyncio.gather(
        live_client.post(f"{path}/erase", headers=live_tenant.headers),
        live_client.patch(path, json={"lifecycle_stage": "customer"}, headers=live_tenant.headers),
    )
    assert (erased.status_code, patched.status_code) == (200, 200), (erased.text, patched.text)
    final = (await live_client.get(path, headers=live_tenant.headers)).json()
    assert final["email"] is None
    assert final["version"] == 3
