"""Models trained on the workspace's won and lost deals: features as of each decision, the
model's share in scores (still adding up), and trainings one after another."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from tests.builders import (
    Tenant,
    assert_problem,
    create_contact,
    create_deal,
    create_key,
    create_pipeline,
)
from tests.loyalty.helpers import events_of
from tests.scoring.helpers import interact, lead_score, put_scoring, score


async def _history(client: AsyncClient, tenant: Tenant, won: int, lost: int) -> None:
    """Won deals' contacts are directors who talked to us often before the decision; lost
    deals' contacts talked once, and a lot after the loss (which must not count)."""
    pipeline = await create_pipeline(client, tenant)
    stage = {s["kind"]: s["id"] for s in pipeline["stages"] if s["kind"] != "open"}
    decided = datetime.now(UTC) - timedelta(days=60)
    for index in range(won + lost):
        is_won = index < won
        tags = ["director"] if is_won and index % 4 else []
        contact = await create_contact(client, tenant, tags=tags)
        touches = 4 if is_won else 1
        for day in range(touches):
            await interact(client, tenant, contact["id"], decided - timedelta(days=day + 1))
        if not is_won:
            for day in range(6):
                await interact(client, tenant, contact["id"], decided + timedelta(days=day + 1))
        await create_deal(
            client, tenant, stage["won" if is_won else "lost"], contact_ids=[contact["id"]],
            closed_at=decided.isoformat(),
        )  # fmt: skip


async def _train(client: AsyncClient, tenant: Tenant) -> dict[str, Any]:
    answer = await client.post("/v1/lead-scoring/models", headers=tenant.headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def test_a_model_needs_a_set_up_and_enough_history(
    client: AsyncClient, tenant: Tenant
) -> None:
    assert_problem(await client.post("/v1/lead-scoring/models", headers=tenant.headers), 404)
    await put_scoring(client, tenant)
    await _history(client, tenant, won=5, lost=4)
    problem = assert_problem(
        await client.post("/v1/lead-scoring/models", headers=tenant.headers), 409
    )
    assert (problem["type"].rsplit("/", 1)[-1], problem["won"], problem["lost"]) == (
        "not-enough-history", 5, 4,
    )  # fmt: skip
    listed = await client.get("/v1/lead-scoring/models", headers=tenant.headers)
    assert listed.json()["data"] == []
    assert (await client.get("/v1/lead-scoring", headers=tenant.headers)).json()["model_id"] is None


async def test_the_model_learns_from_history_and_shares_in_scores(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await put_scoring(client, tenant, model_weight=0.5)
    await _history(client, tenant, won=8, lost=8)
    model = await _train(client, tenant)
    assert (model["samples"], model["won"], model["lost"]) == (16, 8, 8)
    weights = {f["key"]: f["weight"] for f in model["features"]}
    assert set(weights) == {
        "fit:director", "fit:software", "fit:competitor", "engagement:touches",
        "engagement:inbound-calls", "interactions_recent", "days_since_last_interaction",
        "has_company", "has_phone", "has_email",
    }  # fmt: skip
    # Interactions before the decision tell won from lost; those after a loss were not seen.
    assert weights["engagement:touches"] > 0.3
    assert weights["fit:director"] > 0
    assert weights["fit:software"] == 0  # nobody's company is Software: a constant column
    assert model["converged"]
    assert model["auc"] > 0.9
    config = (await client.get("/v1/lead-scoring", headers=tenant.headers)).json()
    assert (config["model_id"], config["version"], config["rescored_at"]) == (
        model["id"], 2, None,
    )  # fmt: skip
    created = await events_of(client, tenant, "lead_score_model.created")
    assert [e["data"]["id"] for e in created] == [model["id"]]

    engaged = await create_contact(client, tenant, tags=["director"])
    quiet = await create_contact(client, tenant)
    for hours in (1, 2, 3, 4):
        await interact(client, tenant, engaged["id"], datetime.now(UTC) - timedelta(hours=hours))
    await score(sessionmaker)
    high = await lead_score(client, tenant, engaged["id"])
    low = await lead_score(client, tenant, quiet["id"])
    assert high["model_id"] == low["model_id"] == model["id"]
    kinds = {f["kind"] for f in high["factors"]}
    assert {"fit", "engagement", "baseline", "model"} <= kinds
    # Rules: 30 + 30 = 60, half of it; the model sees an engaged director: P(won) high.
    assert high["score"] > 60 > low["score"]
    rules_half = sum(
        f["contribution"] for f in high["factors"] if f["kind"] in ("fit", "engagement")
    )
    assert 29 <= rules_half <= 31


async def test_models_are_listed_newest_first_and_read_by_id(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:  # fmt: skip
    await put_scoring(client, tenant)
    await _history(client, tenant, won=5, lost=5)
    first = await _train(client, tenant)
    second = await _train(client, tenant)
    listed = await client.get("/v1/lead-scoring/models?limit=1", headers=tenant.headers)
    body = listed.json()
    assert [m["id"] for m in body["data"]] == [second["id"]]
    rest = await client.get(
        f"/v1/lead-scoring/models?cursor={body['next_cursor']}", headers=tenant.headers
    )
    assert [m["id"] for m in rest.json()["data"]] == [first["id"]]
    got = await client.get(f"/v1/lead-scoring/models/{first['id']}", headers=tenant.headers)
    assert got.json() == first
    theirs = await client.get(
        f"/v1/lead-scoring/models/{first['id']}", headers=other_tenant.headers
    )
    assert_problem(theirs, 404)
    reader = await create_key(sessionmaker, tenant, scopes=[Scope.scoring_read])
    assert_problem(await client.post("/v1/lead-scoring/models", headers=reader.headers), 403)
    assert (await client.get("/v1/lead-scoring/models", headers=reader.headers)).status_code == 200


async def test_a_retried_training_with_its_idempotency_key_trains_once(
    client: AsyncClient, tenant: Tenant
) -> None:
    await put_scoring(client, tenant)
    await _history(client, tenant, won=5, lost=5)
    headers = {**tenant.headers, "Idempotency-Key": "train-1"}
    first = await client.post("/v1/lead-scoring/models", headers=headers)
    again = await client.post("/v1/lead-scoring/models", headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    listed = await client.get("/v1/lead-scoring/models", headers=tenant.headers)
    assert [m["id"] for m in listed.json()["data"]] == [first.json()["id"]]
    bad = {**tenant.headers, "Idempotency-Key": "has space"}
    assert_problem(await client.post("/v1/lead-scoring/models", headers=bad), 422)
    assert_problem(await client.get("/v1/lead-scoring/models/nope", headers=tenant.headers), 422)
    assert_problem(await client.get("/v1/lead-scoring/models?limit=0", headers=tenant.headers), 422)


async def test_concurrent_trainings_run_one_after_another(
    live_client: AsyncClient, live_tenant: Tenant
) -> None:
    await put_scoring(live_client, live_tenant)
    await _history(live_client, live_tenant, won=5, lost=5)
    answers = await asyncio.gather(
        *(live_client.post("/v1/lead-scoring/models", headers=live_tenant.headers)
          for _ in range(3))
    )  # fmt: skip
    assert [a.status_code for a in answers] == [201, 201, 201], [a.text for a in answers]
    config = (await live_client.get("/v1/lead-scoring", headers=live_tenant.headers)).json()
    ids = {a.json()["id"] for a in answers}
    # Each training took the set-up's lock in turn: three version bumps, and the set-up names
    # one of the three (the one that committed last).
    assert (config["version"], config["model_id"] in ids, len(ids)) == (4, True, 3)
    listed = await live_client.get("/v1/lead-scoring/models", headers=live_tenant.headers)
    assert {m["id"] for m in listed.json()["data"]} == ids
