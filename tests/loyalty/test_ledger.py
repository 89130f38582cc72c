"""The points ledger: rules earning on events, refunds and deletions reversing, redemptions that
never overdraw (under concurrency too), expiry of the oldest points first, merges."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from crm_api.loyalty.service import expire_points
from tests.builders import Tenant, assert_problem, create_contact, create_key
from tests.loyalty.helpers import (
    account,
    earn,
    entries,
    events_of,
    place_order,
    put_program,
)


async def test_a_paid_order_earns_per_unit_rounded_down_plus_the_fixed_points_once(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_program(client, tenant)
    contact = await create_contact(client, tenant)
    order = await place_order(client, tenant, contact["id"], "120.99")
    await place_order(client, tenant, contact["id"], "80.00", currency="USD")  # other currency
    await earn(sessionmaker)
    await earn(sessionmaker)  # nothing twice
    ledger = await entries(client, tenant, contact["id"])
    assert [(e["kind"], e["points"], e["rule_key"]) for e in ledger] == [("earn", 125, "orders")]
    assert (ledger[0]["source_type"], ledger[0]["source_id"]) == ("order", order["id"])
    assert ledger[0]["balance_after"] == 125
    assert (await account(client, tenant, contact["id"]))["balance"] == 125
    created = await events_of(client, tenant, "loyalty_entry.created")
    assert [e["data"]["id"] for e in created] == [ledger[0]["id"]]


async def test_an_order_earns_when_it_becomes_paid_and_gives_back_when_refunded(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_program(client, tenant)
    contact = await create_contact(client, tenant)
    order = await place_order(client, tenant, contact["id"], "300", status="pending")
    await earn(sessionmaker)
    assert await entries(client, tenant, contact["id"]) == []
    url = f"/v1/orders/{order['id']}"
    await client.patch(url, json={"status": "paid"}, headers=tenant.headers)
    await earn(sessionmaker)
    redeemed = await client.post(
        f"/v1/contacts/{contact['id']}/loyalty/redemptions",
        json={"points": 300, "reason": "Voucher"},
        headers=tenant.headers,
    )
    assert redeemed.status_code == 201, redeemed.text
    await client.patch(url, json={"status": "refunded"}, headers=tenant.headers)
    await earn(sessionmaker)
    ledger = await entries(client, tenant, contact["id"])
    assert [(e["kind"], e["points"], e["balance_after"]) for e in ledger] == [
        ("earn", 305, 305),
        ("redeem", -300, 5),
        # The points were spent: the balance goes below zero rather than the refund being lost.
        ("reverse", -305, -300),
    ]
    assert (ledger[2]["reverses_id"], ledger[2]["reason"]) == (ledger[0]["id"], "Order refunded")
    summary = await account(client, tenant, contact["id"])
    assert (summary["balance"], summary["lifetime_points"]) == (-300, 0)
    # Paid again: the rule earned for this order once already.
    await client.patch(url, json={"status": "paid"}, headers=tenant.headers)
    await earn(sessionmaker)
    assert len(await entries(client, tenant, contact["id"])) == 3


async def test_a_deleted_order_or_response_gives_back_what_it_earned(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_program(client, tenant)
    contact = await create_contact(client, tenant)
    order = await place_order(client, tenant, contact["id"], "10")
    response = await client.post(
        "/v1/feedback", json={"kind": "nps", "score": 9, "contact_id": contact["id"]},
        headers=tenant.headers,
    )  # fmt: skip
    await earn(sessionmaker)
    await client.delete(f"/v1/orders/{order['id']}", headers=tenant.headers)
    await client.delete(f"/v1/feedback/{response.json()['id']}", headers=tenant.headers)
    await earn(sessionmaker)
    ledger = await entries(client, tenant, contact["id"])
    assert [(e["kind"], e["points"]) for e in ledger] == [
        ("earn", 15), ("earn", 50), ("reverse", -15), ("reverse", -50),
    ]  # fmt: skip
    assert (await account(client, tenant, contact["id"]))["balance"] == 0


async def test_profile_completion_and_referrals_earn_once(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_program(client, tenant)
    referrer = await create_contact(client, tenant, first_name="Rita")
    friend = await create_contact(client, tenant, first_name="Fay", referred_by_id=referrer["id"])
    url = f"/v1/contacts/{friend['id']}"
    await client.patch(url, json={"email": "fay@example.com"}, headers=tenant.headers)
    await client.patch(url, json={"birthday": "1990-04-02"}, headers=tenant.headers)  # complete
    await client.patch(url, json={"last_name": "Li"}, headers=tenant.headers)  # still complete
    await earn(sessionmaker)
    assert [(e["rule_key"], e["points"]) for e in await entries(client, tenant, friend["id"])] == [
        ("profile", 30)
    ]
    earned = await entries(client, tenant, referrer["id"])
    assert [(e["rule_key"], e["points"], e["source_id"]) for e in earned] == [
        ("referral", 200, friend["id"])
    ]


async def test_referrals_must_name_another_live_contact(
    client: AsyncClient, tenant: Tenant
) -> None:
    contact = await create_contact(client, tenant)
    answer = await client.patch(
        f"/v1/contacts/{contact['id']}", json={"referred_by_id": contact["id"]},
        headers=tenant.headers,
    )  # fmt: skip
    assert_problem(answer, 422, loc=["body", "referred_by_id"])
    answer = await client.post(
        "/v1/contacts",
        json={"first_name": "X", "referred_by_id": "0193c2a4-7d3e-7a51-9d7e-2f3b1c9e8a10"},
        headers=tenant.headers,
    )
    assert_problem(answer, 422, loc=["body", "referred_by_id"])


async def test_nothing_earns_while_the_program_is_disabled(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    contact = await create_contact(client, tenant)
    await place_order(client, tenant, contact["id"], "50")  # before the program: not credited
    await put_program(client, tenant, enabled=False)
    await place_order(client, tenant, contact["id"], "60")
    await earn(sessionmaker)
    await put_program(client, tenant, enabled=True)
    await earn(sessionmaker)
    await place_order(client, tenant, contact["id"], "70")
    await earn(sessionmaker)
    assert [e["points"] for e in await entries(client, tenant, contact["id"])] == [75]


async def test_redemptions_and_adjustments_refuse_to_overdraw(
    client: AsyncClient, tenant: Tenant
) -> None:
    contact = await create_contact(client, tenant)
    base = f"/v1/contacts/{contact['id']}/loyalty"
    added = await client.post(
        f"{base}/adjustments", json={"points": 100, "reason": "Welcome", "reference": "crm-1"},
        headers=tenant.headers,
    )  # fmt: skip
    assert (added.status_code, added.json()["kind"]) == (201, "adjust"), added.text
    too_much = await client.post(
        f"{base}/redemptions", json={"points": 101}, headers=tenant.headers
    )
    problem = assert_problem(too_much, 409)
    assert problem["type"].endswith("insufficient-points")
    assert (problem["balance"], problem["requested"]) == (100, 101)
    taken = await client.post(
        f"{base}/adjustments", json={"points": -101, "reason": "Oops"}, headers=tenant.headers
    )
    assert_problem(taken, 409)
    for body in ({"points": 0}, {"points": -5}, {"points": "5"}, {"points": 5, "extra": 1}):
        assert_problem(
            await client.post(f"{base}/redemptions", json=body, headers=tenant.headers), 422
        )
    assert_problem(
        await client.post(
            f"{base}/adjustments", json={"points": 0, "reason": "x"}, headers=tenant.headers
        ),
        422,
    )
    spent = await client.post(f"{base}/redemptions", json={"points": 100}, headers=tenant.headers)
    assert (spent.status_code, spent.json()["balance_after"]) == (201, 0)
    assert spent.json()["api_key_id"] is not None
    assert (await account(client, tenant, contact["id"]))["lifetime_points"] == 100


async def test_the_ledger_answers_404_for_unknown_or_other_workspaces_contacts_and_needs_scopes(
    client: AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    theirs = await create_contact(client, other_tenant)
    for path in ("", "/entries"):
        answer = await client.get(
            f"/v1/contacts/{theirs['id']}/loyalty{path}", headers=tenant.headers
        )
        assert_problem(answer, 404)
    answer = await client.post(
        f"/v1/contacts/{theirs['id']}/loyalty/adjustments", json={"points": 5, "reason": "x"},
        headers=tenant.headers,
    )  # fmt: skip
    assert_problem(answer, 404)
    assert_problem(await client.get(f"/v1/contacts/{theirs['id']}/loyalty"), 401)
    reader = await create_key(sessionmaker, tenant, [Scope.loyalty_read])
    mine = await create_contact(client, tenant)
    answer = await client.post(
        f"/v1/contacts/{mine['id']}/loyalty/redemptions", json={"points": 1},
        headers=reader.headers,
    )  # fmt: skip
    assert assert_problem(answer, 403)["required_scope"] == "loyalty:write"
    contacts_only = await create_key(sessionmaker, tenant, [Scope.contacts_read])
    answer = await client.get(f"/v1/contacts/{mine['id']}/loyalty", headers=contacts_only.headers)
    assert_problem(answer, 403)


async def test_a_redemption_retried_with_its_idempotency_key_is_taken_once(
    client: AsyncClient, tenant: Tenant
) -> None:
    contact = await create_contact(client, tenant)
    base = f"/v1/contacts/{contact['id']}/loyalty"
    await client.post(
        f"{base}/adjustments", json={"points": 100, "reason": "x"}, headers=tenant.headers
    )
    headers = {**tenant.headers, "Idempotency-Key": "redeem-1"}
    first = await client.post(f"{base}/redemptions", json={"points": 60}, headers=headers)
    again = await client.post(f"{base}/redemptions", json={"points": 60}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert (await account(client, tenant, contact["id"]))["balance"] == 40


async def test_parallel_earns_and_redemptions_never_overdraw_or_lose_points(
    live_client: AsyncClient, live_tenant: Tenant
) -> None:
    contact = await create_contact(live_client, live_tenant)
    base = f"/v1/contacts/{contact['id']}/loyalty"
    headers = live_tenant.headers
    await live_client.post(
        f"{base}/adjustments", json={"points": 1000, "reason": "Start"}, headers=headers
    )
    redemptions = [
        live_client.post(f"{base}/redemptions", json={"points": 150}, headers=headers)
        for _ in range(12)
    ]
    earnings = [
        live_client.post(
            f"{base}/adjustments", json={"points": 10, "reason": "Bonus"}, headers=headers
        )
        for _ in range(12)
    ]
    answers = await asyncio.gather(*redemptions, *earnings)
    redeemed = [a for a in answers[:12] if a.status_code == 201]
    refused = [a for a in answers[:12] if a.status_code == 409]
    assert len(redeemed) + len(refused) == 12, [a.text for a in answers]
    assert all(a.status_code == 201 for a in answers[12:])
    # 1,000 + 12 * 10 = 1,120 could pay for at most 7 redemptions of 150.
    assert 6 <= len(redeemed) <= 7
    url = f"{base}/entries?limit=500"
    ledger = (await live_client.get(url, headers=headers)).json()["data"]
    assert len(ledger) == 1 + 12 + len(redeemed)
    final = (await live_client.get(base, headers=headers)).json()
    assert final["balance"] == 1120 - 150 * len(redeemed) == sum(e["points"] for e in ledger)
    # Entries are made under the account's lock, in id order: each starts where the one before
    # it ended, so none was computed from a stale balance, and none went below zero.
    chain = sorted(ledger, key=lambda e: e["id"])
    previous = 0
    for entry in chain:
        assert entry["balance_after"] - entry["points"] == previous, chain
        assert entry["balance_after"] >= 0
        previous = entry["balance_after"]


async def test_points_expire_oldest_first_after_what_was_spent(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_program(client, tenant, points_expire_after_days=30)
    contact = await create_contact(client, tenant)
    base = f"/v1/contacts/{contact['id']}/loyalty"
    await client.post(
        f"{base}/adjustments", json={"points": 100, "reason": "A"}, headers=tenant.headers
    )
    await client.post(f"{base}/redemptions", json={"points": 70}, headers=tenant.headers)
    summary = await account(client, tenant, contact["id"])
    assert summary["next_expiry"]["points"] == 30
    now = datetime.now(UTC)
    async with sessionmaker() as session:
        assert await expire_points(session, now + timedelta(days=29)) == 0
        assert await expire_points(session, now + timedelta(days=31)) == 1
        await session.commit()
    ledger = await entries(client, tenant, contact["id"])
    assert [(e["kind"], e["points"], e["balance_after"]) for e in ledger] == [
        ("adjust", 100, 100), ("redeem", -70, 30), ("expire", -30, 0),
    ]  # fmt: skip
    summary = await account(client, tenant, contact["id"])
    assert (summary["balance"], summary["lifetime_points"], summary["next_expiry"]) == (
        0,
        100,
        None,
    )
    async with sessionmaker() as session:  # nothing of this contact's is due any more
        await expire_points(session, now + timedelta(days=400))
        await session.commit()
    assert len(await entries(client, tenant, contact["id"])) == 3


async def test_the_ledger_is_append_only(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    contact = await create_contact(client, tenant)
    base = f"/v1/contacts/{contact['id']}/loyalty"
    await client.post(
        f"{base}/adjustments", json={"points": 10, "reason": "x"}, headers=tenant.headers
    )
    async with sessionmaker() as session:
        with pytest.raises(DBAPIError, match="append-only"):
            async with session.begin_nested():
                await session.execute(text("UPDATE loyalty_entries SET points = 1000"))


async def test_a_merge_moves_points_history_and_badges_to_the_survivor(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_program(client, tenant)
    survivor = await create_contact(client, tenant, email="a@example.com")
    duplicate = await create_contact(client, tenant, email="b@example.com")
    await client.post(
        f"/v1/contacts/{survivor['id']}/loyalty/adjustments", json={"points": 40, "reason": "x"},
        headers=tenant.headers,
    )  # fmt: skip
    await place_order(client, tenant, duplicate["id"], "100")
    await earn(sessionmaker)
    merged = await client.post(
        f"/v1/contacts/{survivor['id']}/merge", json={"merge_ids": [duplicate["id"]]},
        headers={**tenant.headers, "If-Match": f'"{survivor["version"]}"'},
    )  # fmt: skip
    assert merged.status_code == 200, merged.text
    assert merged.json()["moved"]["loyalty_entries"] == 1
    summary = await account(client, tenant, survivor["id"])
    assert (summary["balance"], summary["lifetime_points"]) == (145, 145)
    assert [b["key"] for b in summary["badges"]] == ["first-order"]
    assert len(await entries(client, tenant, survivor["id"])) == 2


async def test_a_bad_entries_query_is_422(client: AsyncClient, tenant: Tenant) -> None:
    contact = await create_contact(client, tenant)
    url = f"/v1/contacts/{contact['id']}/loyalty/entries"
    for query in ("kind=gift", "sort=points", "limit=0", "cursor=nonsense", "extra=1"):
        answer = await client.get(f"{url}?{query}", headers=tenant.headers)
        assert_problem(answer, 422)
    answer = await client.get("/v1/contacts/not-an-id/loyalty/entries", headers=tenant.headers)
    assert_problem(answer, 422, loc=["path", "contact_id"])
