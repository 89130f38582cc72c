"""Loyalty test helpers: a program, orders, and the worker's earning rules run on demand."""

from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.loyalty.earning import apply_earning_rules
from tests.builders import Tenant

PROGRAM: dict[str, Any] = {
    "name": "Rewards",
    "rules": [
        {
            "key": "orders",
            "name": "1 point per euro, 5 per order",
            "trigger": "order_paid",
            "points_per_unit": "1",
            "points": 5,
            "currency": "EUR",
        },
        {
            "key": "feedback",
            "name": "Thanks for telling us",
            "trigger": "feedback_given",
            "points": 50,
        },
        {
            "key": "profile",
            "name": "Profile complete",
            "trigger": "profile_completed",
            "points": 30,
            "profile_fields": ["first_name", "email", "birthday"],
        },
        {"key": "referral", "name": "Brought a friend", "trigger": "referral", "points": 200},
    ],
    "tiers": [
        {"key": "gold", "name": "Gold", "min_points": 2000},
        {"key": "silver", "name": "Silver", "min_points": 500},
    ],
    "badges": [
        {"key": "first-order", "name": "First order", "criterion": "paid_orders", "threshold": 1},
        {
            "key": "thousand",
            "name": "1,000 points",
            "criterion": "lifetime_points",
            "threshold": 1000,
        },
    ],
}


async def put_program(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    answer = await client.put(
        "/v1/loyalty/program", json={**PROGRAM, **fields}, headers=tenant.headers
    )
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


async def place_order(
    client: AsyncClient, tenant: Tenant, contact_id: str, total: str, **fields: Any
) -> dict[str, Any]:
    body = {
        "contact_id": contact_id,
        "currency": "EUR",
        "status": "paid",
        "ordered_at": "2026-11-28T10:15:00Z",
        "lines": [{"name": "Thing", "quantity": "1", "unit_price": total}],
        **fields,
    }
    answer = await client.post("/v1/orders", json=body, headers=tenant.headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def earn(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """What the worker does every couple of seconds: apply the rules to the new events."""
    async with sessionmaker() as session:
        while await apply_earning_rules(session, datetime.now(UTC)):
            pass
        await session.commit()


async def account(client: AsyncClient, tenant: Tenant, contact_id: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/contacts/{contact_id}/loyalty", headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def entries(client: AsyncClient, tenant: Tenant, contact_id: str) -> list[dict[str, Any]]:
    answer = await client.get(
        f"/v1/contacts/{contact_id}/loyalty/entries?limit=500&sort=created_at",
        headers=tenant.headers,
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


async def events_of(client: AsyncClient, tenant: Tenant, type: str) -> list[dict[str, Any]]:
    answer = await client.get(f"/v1/events?type={type}&limit=500", headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])
