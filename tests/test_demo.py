from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.demo import ensure_demo_workspace


async def test_demo_workspace_is_seeded_once_and_keeps_its_key(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        key = await ensure_demo_workspace(session, None)
        await session.commit()
    headers = {"Authorization": f"Bearer {key}"}
    found = await client.get("/v1/contacts?q=nguyen&limit=500", headers=headers)
    assert found.status_code == 200
    assert found.json()["data"]  # accented names were seeded and are searchable
    companies = (await client.get("/v1/companies", headers=headers)).json()["data"]
    assert len(companies) == 10
    deals = (await client.get("/v1/deals?limit=500", headers=headers)).json()["data"]
    assert len(deals) == 40
    assert {d["status"] for d in deals} == {"open", "won", "lost"}
    forecast = (await client.get("/v1/deals/forecast", headers=headers)).json()
    assert {row["currency"] for row in forecast["rows"]} == {"EUR", "USD"}
    tickets = (await client.get("/v1/tickets?limit=500", headers=headers)).json()["data"]
    assert len(tickets) == 30
    assert {t["status"] for t in tickets} == {"new", "open", "resolved"}
    assert all(t["sla"]["first_response"] is not None for t in tickets)
    assert any(t["csat"] is not None for t in tickets)
    orders = (await client.get("/v1/orders?limit=500", headers=headers)).json()["data"]
    assert orders
    assert {o["status"] for o in orders} == {"paid", "pending", "refunded"}
    rated = next(t for t in tickets if t["csat"] is not None)
    timeline = await client.get(f"/v1/contacts/{rated['contact_id']}/timeline", headers=headers)
    assert {"ticket", "ticket_comment", "feedback"} <= {e["kind"] for e in timeline.json()["data"]}

    scoring = (await client.get("/v1/lead-scoring", headers=headers)).json()
    assert [r["key"] for r in scoring["fit_rules"]] == ["vip", "software", "qualified"]
    playbooks = (await client.get("/v1/playbooks", headers=headers)).json()["playbooks"]
    assert [p["key"] for p in playbooks] == ["hot-lead", "newsletter"]

    async with sessionmaker() as session:
        assert await ensure_demo_workspace(session, key) == key  # still valid: kept
        replaced = await ensure_demo_workspace(session, "crm_not-a-key")
        await session.commit()
    assert replaced != key
    assert (
        await client.get("/v1/contacts", headers={"Authorization": f"Bearer {replaced}"})
    ).status_code == 200
    again = (await client.get("/v1/companies", headers=headers)).json()["data"]
    assert len(again) == 10  # no second seeding
