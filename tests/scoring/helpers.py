"""Lead scoring test helpers: a set-up, interactions, closed deals, and the worker run on demand."""

from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.scoring.service import score_leads
from tests.builders import Tenant

SCORING: dict[str, Any] = {
    "fit_rules": [
        {
            "key": "director",
            "label": "Tagged director",
            "points": 30,
            "filter": {"field": "tags", "op": "contains", "value": "director"},
        },
        {
            "key": "software",
            "label": "Software company",
            "points": 20,
            "filter": {"field": "company.industry", "op": "eq", "value": "Software"},
        },
        {
            "key": "competitor",
            "label": "Works at a competitor",
            "points": -40,
            "filter": {"field": "tags", "op": "contains", "value": "competitor"},
        },
    ],
    "engagement_rules": [
        {
            "key": "touches",
            "label": "Interactions in the last 30 days",
            "within_days": 30,
            "points_each": 10,
            "max_points": 30,
        },
        {
            "key": "inbound-calls",
            "label": "Calls from them this week",
            "within_days": 7,
            "points_each": 15,
            "max_points": 15,
            "channels": ["call"],
            "direction": "inbound",
        },
    ],
}


async def put_scoring(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    answer = await client.put(
        "/v1/lead-scoring", json={**SCORING, **fields}, headers=tenant.headers
    )
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


async def score(
    sessionmaker: async_sessionmaker[AsyncSession], now: datetime | None = None
) -> None:
    """What the worker does every couple of seconds, until it is caught up."""
    async with sessionmaker() as session:
        while await score_leads(session, now or datetime.now(UTC)):
            pass
        await session.commit()


async def lead_score(client: AsyncClient, tenant: Tenant, contact_id: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/contacts/{contact_id}/lead-score", headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    body = dict(answer.json())
    if body["score"] is not None:
        assert sum(f["contribution"] for f in body["factors"]) == body["score"], body
    return body


async def interact(
    client: AsyncClient, tenant: Tenant, contact_id: str, occurred_at: datetime, **fields: Any
) -> dict[str, Any]:
    body = {
        "channel": "email",
        "direction": "outbound",
        "contact_id": contact_id,
        "occurred_at": occurred_at.isoformat(),
        **fields,
    }
    answer = await client.post("/v1/interactions", json=body, headers=tenant.headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def contributions(body: dict[str, Any]) -> dict[str, int]:
    return {f["key"]: f["contribution"] for f in body["factors"]}
