"""The program document, tiers at their boundaries (up on earning, down as points leave the
window or are reversed), badges once each, and the leaderboard."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from crm_api.loyalty.service import review_due_tiers
from tests.builders import Tenant, assert_problem, create_contact, create_key
from tests.loyalty.helpers import PROGRAM, account, earn, events_of, place_order, put_program


async def _adjust(client: AsyncClient, tenant: Tenant, contact_id: str, points: int) -> None:
    answer = await client.post(
        f"/v1/contacts/{contact_id}/loyalty/adjustments",
        json={"points": points, "reason": "test"},
        headers=tenant.headers,
    )
    assert answer.status_code == 201, answer.text


async def test_the_program_is_created_then_replaced_under_if_match(
    client: AsyncClient, tenant: Tenant
) -> None:
    assert_problem(await client.get("/v1/loyalty/program", headers=tenant.headers), 404)
    nothing_to_match = {**tenant.headers, "If-Match": '"1"'}
    answer = await client.put("/v1/loyalty/program", json=PROGRAM, headers=nothing_to_match)
    assert_problem(answer, 412)
    assert_problem(await client.get("/v1/loyalty/program", headers=tenant.headers), 404)
    created = await client.put("/v1/loyalty/program", json=PROGRAM, headers=tenant.headers)
    assert created.status_code == 201, created.text
    assert created.headers["ETag"] == '"1"'
    body = created.json()
    assert [t["key"] for t in body["tiers"]] == ["silver", "gold"]  # lowest first
    assert body["rules"][2]["profile_fields"] == ["first_name", "email", "birthday"]
    stale = {**tenant.headers, "If-Match": '"7"'}
    replaced = await client.put("/v1/loyalty/program", json={**PROGRAM, "name": "X"}, headers=stale)
    assert_problem(replaced, 412)
    current = {**tenant.headers, "If-Match": '"1"'}
    replaced = await client.put(
        "/v1/loyalty/program", json={**PROGRAM, "name": "X"}, headers=current
    )
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["name"], replaced.headers["ETag"]) == ("X", '"2"')
    same = await client.put(
        "/v1/loyalty/program", json={**PROGRAM, "name": "X"}, headers=tenant.headers
    )
    assert same.json()["version"] == 2  # nothing changed
    got = await client.get(
        "/v1/loyalty/program", headers={**tenant.headers, "If-None-Match": '"2"'}
    )
    assert got.status_code == 304
    events = await events_of(client, tenant, "loyalty_program.*")
    assert [e["type"] for e in events] == ["loyalty_program.created", "loyalty_program.updated"]
    assert events[1]["changes"]["name"] == {"old": "Rewards", "new": "X"}


def _tier(key: str) -> dict[str, Any]:
    return {"key": key, "name": key.upper(), "min_points": 5}


def _rule(**fields: Any) -> dict[str, Any]:
    return {"key": "r", "name": "R", "trigger": "order_paid", "points": 1, **fields}


async def test_a_program_that_does_not_hold_together_is_422_naming_the_field(
    client: AsyncClient, tenant: Tenant
) -> None:
    bad: list[tuple[dict[str, Any], list[Any] | None]] = [
        ({"rules": [_rule(), _rule()]}, ["body", "rules", 1, "key"]),
        ({"tiers": [_tier("a"), _tier("b")]}, ["body", "tiers", 1, "min_points"]),
        ({"rules": [_rule(points=0)]}, None),
        ({"rules": [_rule(trigger="referral", currency="EUR")]}, None),
        ({"rules": [_rule(feedback_kind="nps")]}, None),
        ({"rules": [_rule(key="Bad Key")]}, None),
        ({"rules": [_rule(points_per_unit="1.23456")]}, None),
        ({"points_expire_after_days": 0}, None),
        ({"badges": [{"key": "b", "name": "B", "criterion": "visits", "threshold": 1}]}, None),
        ({"surprise": True}, None),
    ]  # fmt: skip
    for fields, loc in bad:
        answer = await client.put(
            "/v1/loyalty/program", json={"name": "P", **fields}, headers=tenant.headers
        )
        assert_problem(answer, 422, loc=loc)
    assert_problem(await client.get("/v1/loyalty/program", headers=tenant.headers), 404)


async def test_the_program_is_the_workspaces_own_and_needs_its_scopes(
    client: AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await put_program(client, other_tenant)
    assert_problem(await client.get("/v1/loyalty/program", headers=tenant.headers), 404)
    assert_problem(await client.get("/v1/loyalty/program"), 401)
    reader = await create_key(sessionmaker, tenant, [Scope.loyalty_read])
    answer = await client.put("/v1/loyalty/program", json=PROGRAM, headers=reader.headers)
    assert assert_problem(answer, 403)["required_scope"] == "loyalty:write"
    board = await client.get("/v1/loyalty/leaderboard", headers=tenant.headers)
    assert board.json()["data"] == []


async def test_tiers_change_exactly_at_their_thresholds(
    client: AsyncClient, tenant: Tenant
) -> None:
    await put_program(client, tenant)
    contact = await create_contact(client, tenant)
    await _adjust(client, tenant, contact["id"], 499)
    summary = await account(client, tenant, contact["id"])
    assert summary["tier"] is None
    assert (summary["next_tier"]["key"], summary["next_tier"]["points_needed"]) == ("silver", 1)
    await _adjust(client, tenant, contact["id"], 1)  # 500: silver
    summary = await account(client, tenant, contact["id"])
    assert summary["tier"]["key"] == "silver"
    assert (summary["next_tier"]["key"], summary["next_tier"]["points_needed"]) == ("gold", 1500)
    # Spending does not lower the tier; taking points back does.
    answer = await client.post(
        f"/v1/contacts/{contact['id']}/loyalty/redemptions", json={"points": 500},
        headers=tenant.headers,
    )  # fmt: skip
    assert answer.status_code == 201
    assert (await account(client, tenant, contact["id"]))["tier"]["key"] == "silver"
    await _adjust(client, tenant, contact["id"], 1500)  # 2000: gold
    await _adjust(client, tenant, contact["id"], -1)  # 1999: back to silver
    summary = await account(client, tenant, contact["id"])
    assert (summary["tier"]["key"], summary["tier_points"]) == ("silver", 1999)
    assert [b["key"] for b in summary["badges"]] == ["thousand"]  # adjustments count as earned
    changes = await events_of(client, tenant, "*.tier_upgraded,*.tier_downgraded")
    assert [(e["type"], e["changes"]["tier_key"]["new"]) for e in changes] == [
        ("loyalty_account.tier_upgraded", "silver"),
        ("loyalty_account.tier_upgraded", "gold"),
        ("loyalty_account.tier_downgraded", "silver"),
    ]
    assert {e["resource_id"] for e in changes} == {contact["id"]}


async def test_a_tier_falls_when_its_points_leave_the_window(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_program(client, tenant, tier_window_days=30)
    contact = await create_contact(client, tenant)
    await _adjust(client, tenant, contact["id"], 600)
    assert (await account(client, tenant, contact["id"]))["tier"]["key"] == "silver"
    now = datetime.now(UTC)
    async with sessionmaker() as session:
        assert await review_due_tiers(session, now + timedelta(days=29)) == 0  # not due
        assert await review_due_tiers(session, now + timedelta(days=30, seconds=5)) == 1
        await session.commit()
    summary = await account(client, tenant, contact["id"])
    assert (summary["tier"], summary["balance"]) == (None, 600)
    downgrades = await events_of(client, tenant, "*.tier_downgraded")
    assert downgrades[-1]["changes"]["tier_key"] == {"old": "silver", "new": None}


async def test_new_tiers_are_applied_to_every_account(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_program(client, tenant)
    contact = await create_contact(client, tenant)
    await _adjust(client, tenant, contact["id"], 600)
    tiers = [{"key": "bronze", "name": "Bronze", "min_points": 100}]
    await put_program(client, tenant, tiers=tiers)
    async with sessionmaker() as session:
        assert await review_due_tiers(session, datetime.now(UTC)) == 1
        await session.commit()
    assert (await account(client, tenant, contact["id"]))["tier"]["key"] == "bronze"


async def test_badges_are_awarded_once_when_reached(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_program(client, tenant)
    contact = await create_contact(client, tenant)
    await place_order(client, tenant, contact["id"], "995")  # 1,000 points and a first order
    await place_order(client, tenant, contact["id"], "10")
    await earn(sessionmaker)
    summary = await account(client, tenant, contact["id"])
    assert sorted(b["key"] for b in summary["badges"]) == ["first-order", "thousand"]
    awarded = await events_of(client, tenant, "*.badge_awarded")
    assert sorted(e["data"]["key"] for e in awarded) == ["first-order", "thousand"]


async def test_the_leaderboard_ranks_with_ties_by_window_and_tier(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await put_program(client, tenant)
    people = [await create_contact(client, tenant, first_name=n) for n in ("A", "B", "C", "D")]
    for person, points in zip(people, (700, 300, 700, 100), strict=True):
        await _adjust(client, tenant, person["id"], points)
    theirs = await create_contact(client, other_tenant)
    await _adjust(client, other_tenant, theirs["id"], 5000)
    board = await client.get("/v1/loyalty/leaderboard?limit=3", headers=tenant.headers)
    assert board.status_code == 200, board.text
    rows = board.json()["data"]
    assert [(r["rank"], r["first_name"], r["points"]) for r in rows] == [
        (1, "A", 700), (1, "C", 700), (3, "B", 300),
    ]  # fmt: skip
    assert board.json()["since"] is None
    silver = await client.get("/v1/loyalty/leaderboard?tier=silver", headers=tenant.headers)
    assert [r["first_name"] for r in silver.json()["data"]] == ["A", "C"]
    recent = await client.get("/v1/loyalty/leaderboard?days=7", headers=tenant.headers)
    assert len(recent.json()["data"]) == 4
    assert recent.json()["since"] is not None
    for query in ("days=0", "limit=101", "tier=Not%20a%20key", "sort=points"):
        answer = await client.get(f"/v1/loyalty/leaderboard?{query}", headers=tenant.headers)
        assert_problem(answer, 422)


async def test_concurrent_first_puts_create_one_program_and_replace_it_in_turn(
    live_client: AsyncClient, live_tenant: Tenant
) -> None:
    answers = await asyncio.gather(
        *(
            live_client.put(
                "/v1/loyalty/program",
                json={**PROGRAM, "name": f"P{i}"},
                headers=live_tenant.headers,
            )
            for i in range(5)
        )
    )
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 201], [
        a.text for a in answers
    ]
    final = await live_client.get("/v1/loyalty/program", headers=live_tenant.headers)
    assert final.json()["version"] == 5
    events = await events_of(live_client, live_tenant, "loyalty_program.*")
    assert [e["type"] for e in events] == ["loyalty_program.created"] + [
        "loyalty_program.updated"
    ] * 4
