"""Writes racing on real connections (the live app commits)."""

import asyncio
import itertools

from httpx import AsyncClient

from tests.builders import Tenant, create_deal, create_pipeline


async def test_concurrent_moves_leave_an_unbroken_history(
    live_client: AsyncClient, live_tenant: Tenant
) -> None:
    pipeline = await create_pipeline(live_client, live_tenant)
    stages = [s["id"] for s in pipeline["stages"]]
    deal = await create_deal(live_client, live_tenant, stages[0])
    url = f"/v1/deals/{deal['id']}"
    responses = await asyncio.gather(
        *(
            live_client.patch(url, json={"stage_id": stages[i % 4]}, headers=live_tenant.headers)
            for i in range(1, 13)
        )
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    final = (await live_client.get(url, headers=live_tenant.headers)).json()
    response = await live_client.get(f"{url}/stage-history?limit=100", headers=live_tenant.headers)
    entries = response.json()["data"]
    # Each move starts where the one before it ended, and each one bumped the version once.
    assert all(b["from_stage_id"] == a["to_stage_id"] for a, b in itertools.pairwise(entries))
    assert entries[-1]["to_stage_id"] == final["stage_id"]
    assert len(entries) == final["version"]


async def test_a_stage_is_never_deleted_under_a_deal_going_into_it(
    live_client: AsyncClient, live_tenant: Tenant
) -> None:
    pipeline = await create_pipeline(live_client, live_tenant)
    headers = live_tenant.headers
    outcomes = set()
    for _ in range(6):
        stage = await live_client.post(
            f"/v1/pipelines/{pipeline['id']}/stages",
            json={"name": "Temp", "probability": 10},
            headers=headers,
        )
        stage_id = stage.json()["id"]
        deleted, created = await asyncio.gather(
            live_client.delete(
                f"/v1/pipelines/{pipeline['id']}/stages/{stage_id}", headers=headers
            ),
            live_client.post(
                "/v1/deals", json={"name": "D", "stage_id": stage_id}, headers=headers
            ),
        )
        outcome = (deleted.status_code, created.status_code)
        assert outcome in {(204, 422), (409, 201)}, (deleted.text, created.text)
        outcomes.add(outcome)
        if created.status_code == 201:
            await live_client.delete(f"/v1/deals/{created.json()['id']}", headers=headers)
            await live_client.delete(
                f"/v1/pipelines/{pipeline['id']}/stages/{stage_id}", headers=headers
            )
    listed = await live_client.get(f"/v1/pipelines/{pipeline['id']}", headers=headers)
    assert [s["name"] for s in listed.json()["stages"]] == ["Qualified", "Proposal", "Won", "Lost"]


async def test_concurrent_batches_of_one_new_external_id_make_one_deal(
    live_client: AsyncClient, live_tenant: Tenant
) -> None:
    pipeline = await create_pipeline(live_client, live_tenant)
    proposal = pipeline["stages"][1]["id"]
    batches = [
        {"items": [{"external_id": "ERP-RACE", "name": "Race", "stage_id": proposal}]}
        for _ in range(6)
    ]
    responses = await asyncio.gather(
        *(
            live_client.post("/v1/deals/batch/upsert", json=b, headers=live_tenant.headers)
            for b in batches
        )
    )
    results = [r.json()["results"][0] for r in responses]
    assert sorted(r["status"] for r in results) == ["created", *["unchanged"] * 5]
    assert len({r["id"] for r in results}) == 1
    listed = await live_client.get("/v1/deals?external_id=ERP-RACE", headers=live_tenant.headers)
    [deal] = listed.json()["data"]
    history = await live_client.get(
        f"/v1/deals/{deal['id']}/stage-history", headers=live_tenant.headers
    )
    assert len(history.json()["data"]) == 1
