"""The set-up document, rule scores and their explanations, rescoring on change and as windows
move on, and lead scores in filters and segments."""

from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from crm_api.segments.service import refresh_stale_members
from tests.builders import (
    Tenant,
    assert_problem,
    create_company,
    create_contact,
    create_key,
    define_custom_field,
)
from tests.loyalty.helpers import events_of
from tests.scoring.helpers import (
    SCORING,
    contributions,
    interact,
    lead_score,
    put_scoring,
    score,
)


async def test_the_set_up_is_created_then_replaced_under_if_match(
    client: AsyncClient, tenant: Tenant
) -> None:
    assert_problem(await client.get("/v1/lead-scoring", headers=tenant.headers), 404)
    nothing_to_match = {**tenant.headers, "If-Match": '"1"'}
    assert_problem(
        await client.put("/v1/lead-scoring", json=SCORING, headers=nothing_to_match), 412
    )
    assert_problem(await client.get("/v1/lead-scoring", headers=tenant.headers), 404)
    created = await client.put("/v1/lead-scoring", json=SCORING, headers=tenant.headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (created.headers["ETag"], body["model_id"], body["rescored_at"]) == ('"1"', None, None)
    assert body["engagement_rules"][1]["channels"] == ["call"]
    changed = {**SCORING, "model_weight": 0.3}
    stale = {**tenant.headers, "If-Match": '"9"'}
    assert_problem(await client.put("/v1/lead-scoring", json=changed, headers=stale), 412)
    current = {**tenant.headers, "If-Match": '"1"'}
    replaced = await client.put("/v1/lead-scoring", json=changed, headers=current)
    assert (replaced.status_code, replaced.headers["ETag"]) == (200, '"2"')
    same = await client.put("/v1/lead-scoring", json=changed, headers=tenant.headers)
    assert same.json()["version"] == 2
    cached = {**tenant.headers, "If-None-Match": '"2"'}
    assert (await client.get("/v1/lead-scoring", headers=cached)).status_code == 304
    events = await events_of(client, tenant, "lead_scoring.*")
    assert [e["type"] for e in events] == ["lead_scoring.created", "lead_scoring.updated"]
    assert events[1]["changes"]["model_weight"] == {"old": 0.5, "new": 0.3}


async def test_bad_set_ups_are_422_naming_the_field(client: AsyncClient, tenant: Tenant) -> None:
    fit = SCORING["fit_rules"][0]
    touch = SCORING["engagement_rules"][0]
    cases: list[tuple[dict[str, Any], list[Any]]] = [
        ({"fit_rules": [fit, fit]}, ["body", "fit_rules", 1, "key"]),
        ({"fit_rules": [fit], "engagement_rules": [{**touch, "key": fit["key"]}]},
         ["body", "engagement_rules", 0, "key"]),
        ({"engagement_rules": [{**touch, "points_each": 0}]},
         ["body", "engagement_rules", 0, "points_each"]),
        ({"fit_rules": [{**fit, "filter": {"field": "metrics.lead_score", "op": "gt",
                                           "value": 5}}]}, ["body", "fit_rules", 0, "filter"]),
        ({"fit_rules": [{**fit, "filter": {"field": "custom_fields.nope", "op": "eq",
                                           "value": 1}}]}, ["body", "fit_rules", 0, "filter"]),
        ({"fit_rules": [{**fit, "points": 101}]}, ["body", "fit_rules", 0, "points"]),
        ({"model_weight": 1.5}, ["body", "model_weight"]),
        ({"engagement_rules": [{**touch, "channels": ["pigeon"]}]},
         ["body", "engagement_rules", 0, "channels", 0]),
        ({"surprise": True}, ["body", "surprise"]),
    ]  # fmt: skip
    for fields, loc in cases:
        answer = await client.put("/v1/lead-scoring", json=fields, headers=tenant.headers)
        problem = assert_problem(answer, 422)
        assert any(e["loc"][: len(loc)] == loc for e in problem["errors"]), (fields, problem)
    assert_problem(await client.get("/v1/lead-scoring", headers=tenant.headers), 404)


async def test_scoring_needs_a_key_and_the_scope(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert_problem(await client.get("/v1/lead-scoring"), 401)
    reader = await create_key(sessionmaker, tenant, scopes=[Scope.scoring_read])
    answer = await client.put("/v1/lead-scoring", json=SCORING, headers=reader.headers)
    assert "scoring:write" in assert_problem(answer, 403)["detail"]
    contacts_only = await create_key(sessionmaker, tenant, scopes=[Scope.contacts_read])
    assert_problem(await client.get("/v1/lead-scoring", headers=contacts_only.headers), 403)
    contact = await create_contact(client, tenant)
    url = f"/v1/contacts/{contact['id']}/lead-score"
    assert (await client.get(url, headers=contacts_only.headers)).status_code == 200
    assert_problem(await client.get(url, headers=reader.headers), 403)


async def test_rules_score_a_contact_and_the_factors_add_up(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_scoring(client, tenant)
    company = await create_company(client, tenant, industry="Software")
    hot = await create_contact(client, tenant, tags=["director"], company_id=company["id"])
    cold = await create_contact(client, tenant)
    now = datetime.now(UTC)
    for days in (1, 2, 3, 4, 40):  # four in the window: 40 points, held to 30
        await interact(client, tenant, hot["id"], now - timedelta(days=days))
    await interact(client, tenant, hot["id"], now - timedelta(days=2), channel="call",
                   direction="inbound")  # fmt: skip
    await interact(client, tenant, hot["id"], now - timedelta(days=1), channel="call",
                   direction="outbound")  # fmt: skip
    unscored = await lead_score(client, tenant, cold["id"])
    assert (unscored["score"], unscored["factors"], unscored["scored_at"]) == (None, [], None)
    await score(sessionmaker)
    body = await lead_score(client, tenant, hot["id"])
    # 30 + 20 + min(6 touches * 10, 30) + one inbound call 15 = 95
    assert body["score"] == 95
    assert contributions(body) == {"director": 30, "software": 20, "touches": 30,
                                   "inbound-calls": 15}  # fmt: skip
    touches = next(f for f in body["factors"] if f["key"] == "touches")
    assert (touches["kind"], touches["value"], touches["label"]) == (
        "engagement", 6, "Interactions in the last 30 days",
    )  # fmt: skip
    assert body["factors"][0]["contribution"] == 30  # largest first
    assert (await lead_score(client, tenant, cold["id"]))["score"] == 0


async def test_custom_fields_and_orders_count_as_fit(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await define_custom_field(client, tenant, "contacts", "seats", "number")
    fit = [
        {"key": "big", "label": "50+ seats", "points": 25,
         "filter": {"field": "custom_fields.seats", "op": "gte", "value": 50}},
        {"key": "buyer", "label": "Has bought", "points": 35,
         "filter": {"field": "metrics.order_count", "op": "gte", "value": 1}},
    ]  # fmt: skip
    await put_scoring(client, tenant, fit_rules=fit, engagement_rules=[])
    big = await create_contact(client, tenant, custom_fields={"seats": 120})
    small = await create_contact(client, tenant, custom_fields={"seats": 10})
    await score(sessionmaker)
    assert contributions(await lead_score(client, tenant, big["id"])) == {"big": 25}
    assert (await lead_score(client, tenant, small["id"]))["score"] == 0
    order = {"contact_id": small["id"], "currency": "EUR", "status": "paid", "total": "10",
             "ordered_at": "2026-11-28T10:15:00Z"}  # fmt: skip
    assert (await client.post("/v1/orders", json=order, headers=tenant.headers)).status_code == 201
    await score(sessionmaker)
    assert contributions(await lead_score(client, tenant, small["id"])) == {"buyer": 35}


async def test_scores_are_held_between_0_and_100_and_say_so(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    fit = [
        {
            "key": f"r{i}",
            "label": f"Rule {i}",
            "points": 40,
            "filter": {"field": "tags", "op": "contains", "value": "vip"},
        }
        for i in range(3)
    ]
    fit.append({"key": "rival", "label": "Rival", "points": -60,
                "filter": {"field": "tags", "op": "contains", "value": "rival"}})  # fmt: skip
    await put_scoring(client, tenant, fit_rules=fit, engagement_rules=[])
    vip = await create_contact(client, tenant, tags=["vip"])
    rival = await create_contact(client, tenant, tags=["rival"])
    await score(sessionmaker)
    high = await lead_score(client, tenant, vip["id"])
    assert high["score"] == 100
    assert contributions(high) == {"r0": 40, "r1": 40, "r2": 40, "limit": -20}
    low = await lead_score(client, tenant, rival["id"])
    assert (low["score"], contributions(low)) == (0, {"rival": -60, "limit": 60})


async def test_a_change_rescores_within_a_round_and_announces_it(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_scoring(client, tenant)
    company = await create_company(client, tenant, industry="Retail")
    contact = await create_contact(client, tenant, company_id=company["id"])
    await score(sessionmaker)
    assert (await lead_score(client, tenant, contact["id"]))["score"] == 0
    answer = await client.patch(
        f"/v1/contacts/{contact['id']}", json={"tags": ["director"]}, headers=tenant.headers
    )
    assert answer.status_code == 200, answer.text
    await score(sessionmaker)
    assert (await lead_score(client, tenant, contact["id"]))["score"] == 30
    # A change to the company rescores its contacts.
    answer = await client.patch(
        f"/v1/companies/{company['id']}", json={"industry": "Software"}, headers=tenant.headers
    )
    assert answer.status_code == 200, answer.text
    await score(sessionmaker)
    assert (await lead_score(client, tenant, contact["id"]))["score"] == 50
    await interact(client, tenant, contact["id"], datetime.now(UTC) - timedelta(hours=1))
    await score(sessionmaker)
    assert (await lead_score(client, tenant, contact["id"]))["score"] == 60
    changes = await events_of(client, tenant, "contact.lead_score_changed")
    mine = [e for e in changes if e["resource_id"] == contact["id"]]
    assert [(e["data"]["previous_score"], e["data"]["score"]) for e in mine] == [
        (None, 0), (0, 30), (30, 50), (50, 60),
    ]  # fmt: skip
    # Nothing changed: scored again, but nothing announced.
    await score(sessionmaker, datetime.now(UTC) + timedelta(days=2))
    again = await events_of(client, tenant, "contact.lead_score_changed")
    assert len([e for e in again if e["resource_id"] == contact["id"]]) == 4


async def test_the_daily_pass_lets_interactions_leave_their_window(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_scoring(client, tenant, fit_rules=[])
    contact = await create_contact(client, tenant)
    now = datetime.now(UTC)
    await interact(client, tenant, contact["id"], now - timedelta(days=1))
    await score(sessionmaker)
    assert (await lead_score(client, tenant, contact["id"]))["score"] == 10
    await score(sessionmaker, now + timedelta(days=28))
    assert (await lead_score(client, tenant, contact["id"]))["score"] == 10
    await score(sessionmaker, now + timedelta(days=31))
    body = await lead_score(client, tenant, contact["id"])
    assert (body["score"], body["factors"]) == (0, [])


async def test_a_disabled_set_up_leaves_scores_as_they_are(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_scoring(client, tenant)
    contact = await create_contact(client, tenant, tags=["director"])
    await score(sessionmaker)
    await put_scoring(client, tenant, enabled=False)
    await client.patch(f"/v1/contacts/{contact['id']}", json={"tags": []}, headers=tenant.headers)
    await score(sessionmaker)
    assert (await lead_score(client, tenant, contact["id"]))["score"] == 30
    await put_scoring(client, tenant, enabled=True)
    await score(sessionmaker)
    assert (await lead_score(client, tenant, contact["id"]))["score"] == 0


async def test_lead_scores_filter_contacts_and_fill_segments(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_scoring(client, tenant)
    hot = await create_contact(client, tenant, tags=["director"])
    await create_contact(client, tenant)
    segment = await client.post(
        "/v1/segments",
        json={"name": "Hot leads", "kind": "dynamic",
              "filter": {"field": "metrics.lead_score", "op": "gte", "value": 30}},
        headers=tenant.headers,
    )  # fmt: skip
    assert segment.status_code == 201, segment.text
    assert segment.json()["member_count"] == 0  # nobody scored yet
    await score(sessionmaker)
    search = await client.post(
        "/v1/contacts/search",
        json={"filter": {"field": "metrics.lead_score", "op": "gte", "value": 30}},
        headers=tenant.headers,
    )
    assert [c["id"] for c in search.json()["data"]] == [hot["id"]]
    # The score change queued the contact for its segments: the worker adds it.
    async with sessionmaker() as session:
        await refresh_stale_members(session, datetime.now(UTC))
        await session.commit()
    members = await client.get(
        f"/v1/segments/{segment.json()['id']}/members", headers=tenant.headers
    )
    assert [c["id"] for c in members.json()["data"]] == [hot["id"]]


async def test_another_workspaces_contact_is_404(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await create_contact(client, other_tenant)
    answer = await client.get(f"/v1/contacts/{theirs['id']}/lead-score", headers=tenant.headers)
    assert_problem(answer, 404)
    assert_problem(await client.get("/v1/contacts/nope/lead-score", headers=tenant.headers), 422)
