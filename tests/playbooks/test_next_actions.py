"""Playbooks and the next best actions they give: segments, `when` filters over RFM, P(alive)
and lead score, open tickets, and consent (never a channel the contact did not grant)."""

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from tests.builders import (
    Tenant,
    assert_problem,
    create_company,
    create_contact,
    create_key,
    create_ticket,
)
from tests.loyalty.helpers import events_of

WIN_BACK: dict[str, Any] = {
    "key": "win-back",
    "name": "Win back",
    "when": {"field": "metrics.p_alive", "op": "lt", "value": 0.3},
    "offer": "15% off",
    "message": {
        "channels": ["sms", "email"],
        "subject": "We miss you, {{first_name|there}}",
        "template": "Hi {{ first_name | there }} at {{company_name|your company}}: {{offer}}.",
    },
    "owner_task": {"title": "Call {{full_name}}", "due_in_days": 2},
}
NEWSLETTER: dict[str, Any] = {
    "key": "newsletter",
    "name": "Newsletter",
    "message": {"channels": ["email"], "template": "News for {{first_name|you}}"},
    "skip_with_open_tickets": False,
}


async def _put(client: AsyncClient, tenant: Tenant, *playbooks: dict[str, Any]) -> Any:
    return await client.put(
        "/v1/playbooks", json={"playbooks": list(playbooks)}, headers=tenant.headers
    )


async def _actions(client: AsyncClient, tenant: Tenant, contact_id: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/contacts/{contact_id}/next-actions", headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def _set_metrics(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, contact_id: str, **values: Any
) -> None:
    """What a CLV run writes for a contact (P(alive), its RFM segment)."""
    columns = ", ".join(values)
    async with sessionmaker() as session:
        await session.execute(
            text(
                f"INSERT INTO contact_metrics (workspace_id, contact_id, {columns}) "
                f"VALUES (:w, :c, {', '.join(':' + k for k in values)}) "
                f"ON CONFLICT (workspace_id, contact_id) DO UPDATE SET "
                + ", ".join(f"{k} = excluded.{k}" for k in values)
            ),
            {"w": tenant.workspace_id, "c": contact_id, **values},
        )
        await session.commit()


async def test_playbooks_are_created_then_replaced_under_if_match(
    client: AsyncClient, tenant: Tenant
) -> None:
    assert_problem(await client.get("/v1/playbooks", headers=tenant.headers), 404)
    body = {"playbooks": [WIN_BACK]}
    nothing = {**tenant.headers, "If-Match": '"1"'}
    assert_problem(await client.put("/v1/playbooks", json=body, headers=nothing), 412)
    created = await _put(client, tenant, WIN_BACK)
    assert (created.status_code, created.headers["ETag"]) == (201, '"1"')
    assert created.json()["playbooks"][0]["message"]["channels"] == ["sms", "email"]
    stale = {**tenant.headers, "If-Match": '"5"'}
    body = {"playbooks": [NEWSLETTER, WIN_BACK]}
    assert_problem(await client.put("/v1/playbooks", json=body, headers=stale), 412)
    replaced = await client.put(
        "/v1/playbooks", json=body, headers={**tenant.headers, "If-Match": '"1"'}
    )
    assert (replaced.status_code, replaced.headers["ETag"]) == (200, '"2"')
    assert [p["key"] for p in replaced.json()["playbooks"]] == ["newsletter", "win-back"]
    cached = {**tenant.headers, "If-None-Match": '"2"'}
    assert (await client.get("/v1/playbooks", headers=cached)).status_code == 304
    events = await events_of(client, tenant, "playbooks.*")
    assert [e["type"] for e in events] == ["playbooks.created", "playbooks.updated"]


async def test_concurrent_first_puts_create_once(
    live_client: AsyncClient, live_tenant: Tenant
) -> None:
    answers = await asyncio.gather(
        *(live_client.put("/v1/playbooks", json={"playbooks": [{**NEWSLETTER, "name": f"N{i}"}]},
                          headers=live_tenant.headers) for i in range(5))
    )  # fmt: skip
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 201]
    final = (await live_client.get("/v1/playbooks", headers=live_tenant.headers)).json()
    assert final["version"] == 5  # each replaced the one before: no update was lost


async def test_bad_playbooks_are_422_naming_the_field(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await client.post(
        "/v1/segments", json={"name": "Theirs", "kind": "static"}, headers=other_tenant.headers
    )
    message = WIN_BACK["message"]
    cases: list[tuple[list[dict[str, Any]], list[Any]]] = [
        ([WIN_BACK, WIN_BACK], ["body", "playbooks", 1, "key"]),
        ([{**WIN_BACK, "segment_id": theirs.json()["id"]}], ["body", "playbooks", 0, "segment_id"]),
        ([{**WIN_BACK, "when": {"field": "nope", "op": "eq", "value": 1}}],
         ["body", "playbooks", 0, "when"]),
        ([{**WIN_BACK, "message": {**message, "template": "Hi {{nickname}}"}}],
         ["body", "playbooks", 0, "message", "template"]),
        ([{**WIN_BACK, "owner_task": {"title": "Call {{phone}}"}}],
         ["body", "playbooks", 0, "owner_task", "title"]),
        ([{**WIN_BACK, "message": {**message, "channels": ["sms"]}}], ["body", "playbooks", 0]),
        ([{**WIN_BACK, "message": {**message, "channels": ["email", "email"]}}],
         ["body", "playbooks", 0, "message"]),
        ([{"key": "idle", "name": "Does nothing"}], ["body", "playbooks", 0]),
        ([{**WIN_BACK, "message": {**message, "channels": ["fax"]}}],
         ["body", "playbooks", 0, "message", "channels", 0]),
    ]  # fmt: skip
    for playbooks, loc in cases:
        problem = assert_problem(await _put(client, tenant, *playbooks), 422)
        assert any(e["loc"][: len(loc)] == loc for e in problem["errors"]), (playbooks, problem)
    assert_problem(await client.get("/v1/playbooks", headers=tenant.headers), 404)


async def test_playbooks_need_a_key_and_the_scope(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert_problem(await client.get("/v1/playbooks"), 401)
    reader = await create_key(sessionmaker, tenant, scopes=[Scope.playbooks_read])
    assert (
        "playbooks:write"
        in assert_problem(
            await client.put("/v1/playbooks", json={"playbooks": []}, headers=reader.headers), 403
        )["detail"]
    )
    contact = await create_contact(client, tenant)
    url = f"/v1/contacts/{contact['id']}/next-actions"
    assert_problem(await client.get(url), 401)
    assert_problem(await client.get(url, headers=reader.headers), 403)
    contacts_only = await create_key(sessionmaker, tenant, scopes=[Scope.contacts_read])
    assert (await client.get(url, headers=contacts_only.headers)).status_code == 200


async def test_the_first_consented_channel_carries_the_message(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await _put(client, tenant, WIN_BACK)
    company = await create_company(client, tenant, name="Acme")
    contact = await create_contact(
        client, tenant, first_name="Ana", last_name="Lima", email="ana@example.com",
        phone="+14155550100", company_id=company["id"],
        consent={"email": "granted", "sms": "denied"},
    )  # fmt: skip
    await _set_metrics(sessionmaker, tenant, contact["id"], p_alive=0.12, rfm_segment="at_risk")
    body = await _actions(client, tenant, contact["id"])
    assert body["signals"]["p_alive"] == 0.12
    assert body["signals"]["rfm_segment"] == "at_risk"
    assert body["signals"]["consent"] == {"email": "granted", "sms": "denied"}
    [action] = body["data"]
    assert action["message"] == {
        "channel": "email", "to": "ana@example.com", "subject": "We miss you, Ana",
        "body": "Hi Ana at Acme: 15% off.",
    }  # fmt: skip
    assert action["channels_without_consent"] == ["sms"]
    assert action["owner_task"]["title"] == "Call Ana Lima"
    assert date.fromisoformat(action["owner_task"]["due_on"]) - datetime.now(UTC).date() in (
        timedelta(days=2), timedelta(days=1), timedelta(days=3),
    )  # fmt: skip
    assert action["reasons"] == ["Selected by the playbook's `when` filter"]
    # Now SMS is granted: it is the playbook's first choice.
    await client.patch(
        f"/v1/contacts/{contact['id']}", json={"consent": {"sms": "granted"}},
        headers=tenant.headers,
    )  # fmt: skip
    [action] = (await _actions(client, tenant, contact["id"]))["data"]
    assert (action["message"]["channel"], action["message"]["subject"]) == ("sms", None)
    assert action["channels_without_consent"] == []


async def test_no_channel_is_suggested_without_consent(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await _put(client, tenant, WIN_BACK, NEWSLETTER)
    unknown = await create_contact(client, tenant, email="u@example.com", phone="+14155550101")
    denied = await create_contact(
        client, tenant, email="d@example.com", consent={"email": "denied", "sms": "denied"}
    )
    no_address = await create_contact(client, tenant, consent={"email": "granted"})
    for contact in (unknown, denied, no_address):
        await _set_metrics(sessionmaker, tenant, contact["id"], p_alive=0.1)
        body = await _actions(client, tenant, contact["id"])
        [action] = body["data"]
        # The offer and the owner's call still stand; no message on any channel.
        assert (action["playbook_key"], action["message"]) == ("win-back", None)
        assert action["channels_without_consent"] == ["sms", "email"]
        assert action["offer"] == "15% off"
        assert action["owner_task"] is not None
        # The newsletter is only a message: held back, not suggested.
        assert body["held_back"] == [{"playbook_key": "newsletter", "reason": "no_consent"}]


async def test_open_tickets_hold_back_offers_and_segments_choose_who(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    vip = await client.post(
        "/v1/segments", json={"name": "VIP", "kind": "static"}, headers=tenant.headers
    )
    vip_only = {"key": "vip-gift", "name": "VIP gift", "segment_id": vip.json()["id"],
                "owner_task": {"title": "Send {{first_name|them}} a gift"}}  # fmt: skip
    inactive = {**NEWSLETTER, "key": "paused", "active": False}
    await _put(client, tenant, vip_only, inactive, NEWSLETTER)
    member = await create_contact(
        client, tenant, first_name="Bo", email="bo@example.com", consent={"email": "granted"}
    )
    outsider = await create_contact(
        client, tenant, email="o@example.com", consent={"email": "granted"}
    )
    added = await client.post(
        f"/v1/segments/{vip.json()['id']}/members", json={"contact_ids": [member["id"]]},
        headers=tenant.headers,
    )  # fmt: skip
    assert added.status_code == 200, added.text
    body = await _actions(client, tenant, member["id"])
    assert [a["playbook_key"] for a in body["data"]] == ["vip-gift", "newsletter"]
    assert body["data"][0]["reasons"] == ["In the segment 'VIP'"]
    assert body["data"][0]["owner_task"]["title"] == "Send Bo a gift"
    assert body["data"][1]["message"]["body"] == "News for Bo"
    assert body["signals"]["segment_ids"] == [vip.json()["id"]]
    others = await _actions(client, tenant, outsider["id"])
    assert [a["playbook_key"] for a in others["data"]] == ["newsletter"]
    assert others["data"][0]["reasons"] == ["For every contact"]
    await create_ticket(client, tenant, member["id"])
    body = await _actions(client, tenant, member["id"])
    assert body["signals"]["open_ticket_count"] == 1
    assert [a["playbook_key"] for a in body["data"]] == ["newsletter"]  # skip_with_open_tickets off
    assert body["held_back"] == [{"playbook_key": "vip-gift", "reason": "open_tickets"}]
    # A deleted segment's playbook simply selects nobody.
    deleted = await client.delete(f"/v1/segments/{vip.json()['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    body = await _actions(client, tenant, member["id"])
    assert body["held_back"] == []
    assert [a["playbook_key"] for a in body["data"]] == ["newsletter"]


async def test_when_filters_see_lead_scores_and_rfm(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    scored = {"field": "metrics.lead_score", "op": "gte", "value": 70}
    awake = {"field": "metrics.rfm_segment", "op": "neq", "value": "hibernating"}
    when = {"all": [scored, awake]}
    hot = {"key": "hot", "name": "Hot lead", "when": when,
           "owner_task": {"title": "Call now", "due_in_days": 0}}  # fmt: skip
    await _put(client, tenant, hot)
    contact = await create_contact(client, tenant)
    assert (await _actions(client, tenant, contact["id"]))["data"] == []
    await _set_metrics(
        sessionmaker, tenant, contact["id"], lead_score=80, rfm_segment="loyal_customers"
    )
    [action] = (await _actions(client, tenant, contact["id"]))["data"]
    assert action["owner_task"]["due_on"] is not None
    assert action["message"] is None
    await _set_metrics(sessionmaker, tenant, contact["id"], rfm_segment="hibernating")
    assert (await _actions(client, tenant, contact["id"]))["data"] == []


async def test_another_workspaces_contact_is_404(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await _put(client, tenant, NEWSLETTER)
    theirs = await create_contact(client, other_tenant)
    answer = await client.get(f"/v1/contacts/{theirs['id']}/next-actions", headers=tenant.headers)
    assert_problem(answer, 404)
    assert_problem(await client.get("/v1/contacts/nope/next-actions", headers=tenant.headers), 422)
    mine = await create_contact(client, other_tenant, consent={"email": "granted"})
    # Without playbooks of its own a workspace gets no actions (not another's).
    body = await _actions(client, other_tenant, mine["id"])
    assert (body["data"], body["held_back"]) == ([], [])
