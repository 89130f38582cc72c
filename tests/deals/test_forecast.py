"""The forecast on a fixture whose sums were worked out by hand (in the comments, * for times)."""

from typing import Any

import pytest
from httpx import AsyncClient

from tests.builders import Tenant, assert_problem, create_deal, create_pipeline, create_user


@pytest.fixture
async def fixture(client: AsyncClient, tenant: Tenant) -> dict[str, Any]:
    pipeline = await create_pipeline(client, tenant)  # Qualified 20 %, Proposal 60 %, Won, Lost
    other = await create_pipeline(client, tenant, name="Partners")
    qualified, proposal, won, lost = (s["id"] for s in pipeline["stages"])
    alice = (await create_user(client, tenant, name="Alice"))["id"]
    bob = (await create_user(client, tenant, name="Bob"))["id"]

    async def deal(stage: str, owner: str | None, **fields: Any) -> None:
        await create_deal(client, tenant, stage, owner_id=owner, **fields)

    eur, usd = {"currency": "EUR"}, {"currency": "USD"}
    await deal(qualified, alice, amount="1000.00", expected_close_date="2026-12-10", **eur)
    await deal(proposal, bob, amount="2500.50", expected_close_date="2026-12-20", **eur)
    await deal(proposal, alice, amount="400", expected_close_date="2026-12-05", **usd)
    await deal(qualified, alice, amount="300", expected_close_date="2027-01-15", **eur)
    await deal(won, bob, amount="5000", closed_at="2026-12-03T10:00:00Z", **eur)
    await deal(lost, alice, amount="700", closed_at="2026-11-30T23:30:00Z", **eur)
    await deal(qualified, None, expected_close_date="2026-12-01")  # no amount
    await deal(proposal, bob, amount="100", **eur)  # no expected close date
    await deal(other["stages"][2]["id"], bob, amount="999", **eur)  # another pipeline
    return {"pipeline": pipeline, "alice": alice, "bob": bob}


def row(**fields: Any) -> dict[str, Any]:
    empty = {
        "period": None,
        "owner_id": None,
        "stage_id": None,
        "open_count": 0,
        "open_amount": "0",
        "weighted_amount": "0",
        "won_count": 0,
        "won_amount": "0",
        "lost_count": 0,
        "lost_amount": "0",
    }
    return {**empty, **fields}


async def forecast(client: AsyncClient, tenant: Tenant, query: str) -> dict[str, Any]:
    response = await client.get(f"/v1/deals/forecast?{query}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_by_month(client: AsyncClient, tenant: Tenant, fixture: dict[str, Any]) -> None:
    result = await forecast(client, tenant, f"pipeline_id={fixture['pipeline']['id']}")
    assert result["group_by"] == "month"
    assert result["deals_without_amount"] == 1
    assert result["rows"] == [
        # Lost on 30 November (UTC).
        row(period="2026-11", currency="EUR", lost_count=1, lost_amount="700"),
        # 1000.00 * 20 % + 2500.50 * 60 % = 200 + 1500.30; won on 3 December.
        row(
            period="2026-12",
            currency="EUR",
            open_count=2,
            open_amount="3500.50",
            weighted_amount="1700.30",
            won_count=1,
            won_amount="5000",
        ),
        # 400 * 60 %, never added to the euros.
        row(
            period="2026-12",
            currency="USD",
            open_count=1,
            open_amount="400",
            weighted_amount="240.00",
        ),
        row(
            period="2027-01",
            currency="EUR",
            open_count=1,
            open_amount="300",
            weighted_amount="60.00",
        ),
        # Open without an expected close date: 100 * 60 %.
        row(currency="EUR", open_count=1, open_amount="100", weighted_amount="60.00"),
    ]


async def test_by_owner(client: AsyncClient, tenant: Tenant, fixture: dict[str, Any]) -> None:
    result = await forecast(
        client, tenant, f"pipeline_id={fixture['pipeline']['id']}&group_by=owner"
    )
    rows = {(r["owner_id"], r["currency"]): r for r in result["rows"]}
    alice, bob = fixture["alice"], fixture["bob"]
    assert rows == {
        # 1000.00 * 20 % + 300 * 20 %
        (alice, "EUR"): row(
            owner_id=alice,
            currency="EUR",
            open_count=2,
            open_amount="1300.00",
            weighted_amount="260.00",
            lost_count=1,
            lost_amount="700",
        ),
        (alice, "USD"): row(
            owner_id=alice,
            currency="USD",
            open_count=1,
            open_amount="400",
            weighted_amount="240.00",
        ),
        # 2500.50 * 60 % + 100 * 60 %
        (bob, "EUR"): row(
            owner_id=bob,
            currency="EUR",
            open_count=2,
            open_amount="2600.50",
            weighted_amount="1560.30",
            won_count=1,
            won_amount="5000",
        ),
    }


async def test_by_stage_in_pipeline_order(
    client: AsyncClient, tenant: Tenant, fixture: dict[str, Any]
) -> None:
    pipeline = fixture["pipeline"]
    qualified, proposal, won, lost = (s["id"] for s in pipeline["stages"])
    result = await forecast(client, tenant, f"pipeline_id={pipeline['id']}&group_by=stage")
    assert result["rows"] == [
        row(
            stage_id=qualified,
            currency="EUR",
            open_count=2,
            open_amount="1300.00",
            weighted_amount="260.00",
        ),
        row(
            stage_id=proposal,
            currency="EUR",
            open_count=2,
            open_amount="2600.50",
            weighted_amount="1560.30",
        ),
        row(
            stage_id=proposal,
            currency="USD",
            open_count=1,
            open_amount="400",
            weighted_amount="240.00",
        ),
        row(stage_id=won, currency="EUR", won_count=1, won_amount="5000"),
        row(stage_id=lost, currency="EUR", lost_count=1, lost_amount="700"),
    ]


async def test_filters(client: AsyncClient, tenant: Tenant, fixture: dict[str, Any]) -> None:
    pipeline_id = fixture["pipeline"]["id"]
    december = await forecast(
        client, tenant, f"pipeline_id={pipeline_id}&on_or_after=2026-12-01&before=2027-01-01"
    )
    assert [(r["period"], r["currency"]) for r in december["rows"]] == [
        ("2026-12", "EUR"),
        ("2026-12", "USD"),
    ]
    assert december["deals_without_amount"] == 1
    dollars = await forecast(client, tenant, f"pipeline_id={pipeline_id}&currency=USD")
    assert [r["open_amount"] for r in dollars["rows"]] == ["400"]
    assert dollars["deals_without_amount"] == 0
    everything = await forecast(client, tenant, "group_by=stage&owner_id=" + fixture["bob"])
    # Bob's won deal in the other pipeline counts here.
    assert sum(int(float(r["won_amount"])) for r in everything["rows"]) == 5999


async def test_bad_parameters(client: AsyncClient, tenant: Tenant) -> None:
    for query, loc in [
        ("group_by=week", ["query", "group_by"]),
        ("currency=eur", ["query", "currency"]),
        ("before=tomorrow", ["query", "before"]),
        ("pipeline_id=nope", ["query", "pipeline_id"]),
        ("colour=red", ["query", "colour"]),
    ]:
        response = await client.get(f"/v1/deals/forecast?{query}", headers=tenant.headers)
        assert_problem(response, 422, loc=loc)
    unknown = "00000000-0000-7000-8000-000000000000"
    response = await client.get(f"/v1/deals/forecast?pipeline_id={unknown}", headers=tenant.headers)
    assert_problem(response, 404)
