"""`/v1/metrics/clv/runs`: a run is queued, the worker loads the orders from PostgreSQL (COPY
into Polars), fits the models and stores every customer; what it gives equals lifetimes' on
the golden orders."""

import asyncio
import csv
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.analytics import clv
from crm_api.analytics.service import run_queued_clv_runs
from crm_api.contacts.models import Contact
from crm_api.core.db import new_id
from crm_api.core.scopes import Scope
from crm_api.orders.models import Order
from tests.analytics.test_clv import GOLDEN, reference
from tests.builders import Tenant, assert_problem, create_contact, create_key

AS_OF = "2026-06-24T23:59:59Z"


async def run_worker(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    done = 0
    while True:
        async with sessionmaker() as session, session.begin():
            step = await run_queued_clv_runs(session, datetime.now(UTC))
        if not step:
            return done
        done += step


async def load_golden_orders(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> dict[str, str]:
    """The golden orders as paid orders of new contacts: {contact id: golden customer}."""
    with (GOLDEN / "orders.csv").open() as file:
        rows = list(csv.DictReader(file))
    ids = {name: new_id() for name in sorted({row["contact_id"] for row in rows})}
    async with sessionmaker() as session, session.begin():
        await session.execute(
            insert(Contact),
            [
                {"workspace_id": tenant.workspace_id, "id": i, "first_name": n}
                for n, i in ids.items()
            ],
        )
        orders = []
        for row in rows:
            at = datetime.fromisoformat(row["ordered_at"].replace("Z", "+00:00"))
            orders.append({"workspace_id": tenant.workspace_id, "id": new_id(),
                           "contact_id": ids[row["contact_id"]], "status": "paid",
                           "ordered_at": at, "paid_at": at, "currency": "EUR",
                           "total": row["total"]})  # fmt: skip
        await session.execute(insert(Order), orders)
    return {str(i): name for name, i in ids.items()}


async def start_run(client: AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/metrics/clv/runs", json=body, headers=tenant.headers)
    assert response.status_code == 202, response.text
    assert response.headers["Location"].endswith(f"/v1/metrics/clv/runs/{response.json()['id']}")
    return dict(response.json())


async def get_run(client: AsyncClient, tenant: Tenant, run: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(f"/v1/metrics/clv/runs/{run['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def customers(client: AsyncClient, tenant: Tenant, run: dict[str, Any]) -> list[Any]:
    found: list[Any] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        response = await client.get(
            f"/v1/metrics/clv/runs/{run['id']}/customers", params=params, headers=tenant.headers
        )
        assert response.status_code == 200, response.text
        found += response.json()["data"]
        if (cursor := response.json()["next_cursor"]) is None:
            return found


@pytest.mark.parametrize("unit", ["week", "day"])
async def test_a_run_gives_what_lifetimes_gives(
    client: AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    unit: str,
) -> None:
    fits, expected = reference(unit)
    golden_of = await load_golden_orders(sessionmaker, tenant)
    run = await start_run(client, tenant, as_of=AS_OF, time_unit=unit,
                          prediction_horizon=fits["prediction_horizon"])  # fmt: skip
    assert (run["status"], run["bgnbd"], run["customers"]) == ("queued", None, None)
    assert await run_worker(sessionmaker) == 1
    done = await get_run(client, tenant, run)
    assert done["status"] == "succeeded", done["error"]
    assert (done["currency"], done["customers"]) == ("EUR", fits["customers"])
    assert done["returning_customers"] == fits["returning_customers"]
    for model in ("bgnbd", "gamma_gamma"):
        assert done[model]["converged"] is True
        for name, value in fits[model].items():
            assert done[model][name] == pytest.approx(value, rel=1e-4), (model, name)
    scored = await customers(client, tenant, run)
    assert [c["clv"] for c in scored] == sorted((c["clv"] for c in scored), reverse=True)
    summary = await client.get("/v1/metrics/clv", params={"as_of": AS_OF}, headers=tenant.headers)
    assert summary.json()["latest_run"]["id"] == run["id"]
    assert summary.json()["customers"] == fits["customers"]
    assert summary.json()["predicted"]["total"] == pytest.approx(sum(c["clv"] for c in scored))
    historical = sum(c["historical_value"] for c in scored)
    assert summary.json()["historical"]["total"] == pytest.approx(historical)
    reference_rows = {row["contact_id"]: row for row in expected.iter_rows(named=True)}
    assert len(scored) == len(reference_rows)
    for customer in scored:
        theirs = reference_rows[golden_of[customer["contact_id"]]]
        for field in ("frequency", "recency", "T", "monetary_value", "expected_purchases",
                      "p_alive", "expected_average_spend", "clv"):  # fmt: skip
            assert customer[field] == pytest.approx(theirs[field], rel=1e-4, abs=1e-9), field


async def paid_order(
    client: AsyncClient, tenant: Tenant, contact: dict[str, Any], ordered_at: str, **fields: Any
) -> dict[str, Any]:
    body = {"contact_id": contact["id"], "currency": "EUR", "total": "100.00", "lines": [],
            "status": "paid", "ordered_at": ordered_at, **fields}  # fmt: skip
    response = await client.post("/v1/orders", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_orders_count_as_they_stood_at_as_of_in_one_currency(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    await load_golden_orders(sessionmaker, tenant)  # enough customers for the models
    ada, bob, cy = [await create_contact(client, tenant, email=f"{n}@x.com") for n in "abc"]
    for contact in (ada, bob):
        for day in ("2026-01-05", "2026-02-05", "2026-03-05"):
            await paid_order(client, tenant, contact, f"{day}T10:00:00Z")
    await paid_order(client, tenant, ada, "2026-03-20T10:00:00Z", currency="USD")
    await paid_order(client, tenant, cy, "2026-05-01T10:00:00Z")  # after as_of
    refunded = await paid_order(client, tenant, bob, "2026-03-10T10:00:00Z", total="900")
    response = await client.patch(
        f"/v1/orders/{refunded['id']}", json={"status": "refunded"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    run = await start_run(client, tenant, as_of="2026-04-01T00:00:00Z", time_unit="week")
    await run_worker(sessionmaker)
    done = await get_run(client, tenant, run)
    assert (done["status"], done["currency"]) == ("succeeded", "EUR"), done["error"]
    by_contact = {c["contact_id"]: c for c in await customers(client, tenant, run)}
    assert {ada["id"], bob["id"]} <= set(by_contact)
    assert cy["id"] not in by_contact
    assert by_contact[ada["id"]]["frequency"] == 2.0  # the USD order is another currency's
    assert by_contact[bob["id"]]["historical_value"] == 1200.0  # refunded only later
    # As of now, the refund has happened and the order placed after April counts.
    later = await start_run(client, tenant)
    await run_worker(sessionmaker)
    assert (await get_run(client, tenant, later))["customers"] == done["customers"] + 1
    by_contact = {c["contact_id"]: c for c in await customers(client, tenant, later)}
    assert by_contact[bob["id"]]["historical_value"] == 300.0
    assert cy["id"] in by_contact


async def test_a_run_without_repeat_customers_fails_and_says_why(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    contact = await create_contact(client, tenant, email="one@x.com")
    empty = await start_run(client, tenant, as_of="2025-12-31T00:00:00Z")
    await paid_order(client, tenant, contact, "2026-01-05T10:00:00Z")
    single = await start_run(client, tenant)
    assert await run_worker(sessionmaker) == 2
    for run, why in ((empty, "No customer"), (single, "repeat purchases")):
        done = await get_run(client, tenant, run)
        assert done["status"] == "failed"
        assert why in done["error"]
        assert done["finished_at"] is not None
        assert await customers(client, tenant, run) == []


async def test_a_run_whose_models_cannot_be_fitted_fails_and_says_why(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    # Two customers alike in every way: no heterogeneity for the models to fit.
    for name in ("ada", "bob"):
        contact = await create_contact(client, tenant, email=f"{name}@x.com")
        for day in ("2026-01-05", "2026-02-05", "2026-03-05"):
            await paid_order(client, tenant, contact, f"{day}T10:00:00Z")
    run = await start_run(client, tenant, as_of="2026-04-01T00:00:00Z")
    await run_worker(sessionmaker)
    done = await get_run(client, tenant, run)
    assert done["status"] == "failed"
    assert "did not converge" in done["error"]


async def test_a_run_the_models_cannot_compute_fails_instead_of_coming_back(
    client: AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await load_golden_orders(sessionmaker, tenant)

    def overflowing(summary: Any) -> Any:
        raise FloatingPointError("overflow encountered")

    monkeypatch.setattr(clv, "fit_bgnbd", overflowing)
    run = await start_run(client, tenant, as_of=AS_OF)
    assert await run_worker(sessionmaker) == 1  # once: not retried round after round
    done = await get_run(client, tenant, run)
    assert (done["status"], done["error"]) == (
        "failed", "The models could not be computed (FloatingPointError).",
    )  # fmt: skip


async def test_a_segment_limits_the_customers(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    golden_of = await load_golden_orders(sessionmaker, tenant)
    chosen = sorted(golden_of)[:300]
    body = {"name": "Some", "kind": "static", "contact_ids": chosen}
    segment = (await client.post("/v1/segments", json=body, headers=tenant.headers)).json()
    run = await start_run(client, tenant, as_of=AS_OF, segment_id=segment["id"])
    await run_worker(sessionmaker)
    done = await get_run(client, tenant, run)
    assert (done["status"], done["customers"]) == ("succeeded", 300)
    assert {c["contact_id"] for c in await customers(client, tenant, run)} == set(chosen)


class TestRefusals:
    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({"time_unit": "fortnight"}, ["body", "time_unit"]),
            ({"prediction_horizon": 0}, ["body", "prediction_horizon"]),
            ({"clv_horizon_months": 0}, ["body", "clv_horizon_months"]),
            ({"discount_rate_monthly": -0.1}, ["body", "discount_rate_monthly"]),
            ({"currency": "euro"}, ["body", "currency"]),
            ({"as_of": "yesterday"}, ["body", "as_of"]),
            ({"unknown": 1}, ["body", "unknown"]),
        ],
    )
    async def test_bad_parameters_are_422(
        self, client: AsyncClient, tenant: Tenant, body: dict[str, Any], loc: list[str]
    ) -> None:
        response = await client.post("/v1/metrics/clv/runs", json=body, headers=tenant.headers)
        assert_problem(response, 422, loc=loc)

    async def test_auth_and_workspaces(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
        other_tenant: Tenant,
    ) -> None:
        assert_problem(await client.post("/v1/metrics/clv/runs", json={}), 401)
        reader = await create_key(sessionmaker, tenant, [Scope.metrics_read])
        no_scope = await create_key(sessionmaker, tenant, [Scope.orders_read])
        assert_problem(
            await client.post("/v1/metrics/clv/runs", json={}, headers=reader.headers), 403
        )
        run = await start_run(client, tenant)
        for path in (f"/v1/metrics/clv/runs/{run['id']}", "/v1/metrics/clv/runs"):
            assert_problem(await client.get(path, headers=no_scope.headers), 403)
            assert (await client.get(path, headers=reader.headers)).status_code == 200
        for path in (f"/v1/metrics/clv/runs/{run['id']}",
                     f"/v1/metrics/clv/runs/{run['id']}/customers",
                     f"/v1/metrics/clv/runs/{uuid.uuid4()}"):  # fmt: skip
            assert_problem(await client.get(path, headers=other_tenant.headers), 404)
        url = f"/v1/metrics/clv/runs/{run['id']}/customers"
        for params, loc in (({"sort": "name"}, ["query", "sort"]),
                            ({"cursor": "x"}, ["query", "cursor"]),
                            ({"limit": 0}, ["query", "limit"])):  # fmt: skip
            response = await client.get(url, params=params, headers=tenant.headers)
            assert_problem(response, 422, loc=loc)
        listed = await client.get("/v1/metrics/clv/runs", headers=other_tenant.headers)
        assert listed.json()["data"] == []
        theirs = await client.post(
            "/v1/segments", json={"name": "S", "kind": "static"}, headers=other_tenant.headers
        )
        response = await client.post(
            "/v1/metrics/clv/runs", json={"segment_id": theirs.json()["id"]}, headers=tenant.headers
        )
        assert_problem(response, 404)


async def test_two_workers_take_each_run_once(
    live_client: AsyncClient, live_app: Any, live_tenant: Tenant
) -> None:
    sessionmaker = live_app.state.sessionmaker
    await load_golden_orders(sessionmaker, live_tenant)
    runs = [await start_run(live_client, live_tenant, as_of=AS_OF) for _ in range(3)]
    done = await asyncio.gather(run_worker(sessionmaker), run_worker(sessionmaker))
    assert sum(done) == 3
    for run in runs:
        finished = await get_run(live_client, live_tenant, run)
        assert finished["status"] == "succeeded", finished["error"]
        assert finished["customers"] == 2_000


async def test_a_workspace_runs_scores_become_the_contacts_metrics(
    client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    golden_of = await load_golden_orders(sessionmaker, tenant)
    run = await start_run(client, tenant, as_of=AS_OF)
    await run_worker(sessionmaker)
    scored = {c["contact_id"]: c for c in await customers(client, tenant, run)}
    best = max(scored.values(), key=lambda c: c["clv"])
    assert {"rfm_recency_score", "rfm_segment"} <= set(best)
    assert 1 <= best["rfm_monetary_score"] <= 5
    response = await client.get(
        f"/v1/contacts/{best['contact_id']}/metrics", headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    metrics = response.json()
    assert metrics["predicted_clv"] == pytest.approx(best["clv"])
    assert (metrics["p_alive"], metrics["rfm_segment"]) == (best["p_alive"], best["rfm_segment"])
    assert metrics["clv_run_id"] == run["id"]
    # The scores are filter fields: the top customers by predicted value, still likely alive.
    threshold = sorted(c["clv"] for c in scored.values())[-50]
    filter = {"all": [{"field": "metrics.predicted_clv", "op": "gte", "value": threshold},
                      {"field": "metrics.p_alive", "op": "gt", "value": 0.5}]}  # fmt: skip
    found = await client.post(
        "/v1/contacts/search", json={"filter": filter, "limit": 500}, headers=tenant.headers
    )
    expected = {i for i, c in scored.items() if c["clv"] >= threshold and c["p_alive"] > 0.5}
    assert {c["id"] for c in found.json()["data"]} == expected
    assert 0 < len(expected) <= 50
    champions = {"field": "metrics.rfm_segment", "op": "eq", "value": "champions"}
    preview = await client.post(
        "/v1/segments/preview", json={"filter": champions}, headers=tenant.headers
    )
    assert preview.json()["count"] == sum(c["rfm_segment"] == "champions" for c in scored.values())
    # A run on the past (a backtest) and one on a segment leave the scores as they are.
    await start_run(client, tenant, as_of="2026-01-01T00:00:00Z")
    chosen = sorted(golden_of)[:10]
    segment = await client.post("/v1/segments", json={"name": "S", "kind": "static",
                                "contact_ids": chosen}, headers=tenant.headers)  # fmt: skip
    await start_run(client, tenant, as_of=AS_OF, segment_id=segment.json()["id"])
    assert await run_worker(sessionmaker) == 2
    again = await client.get(f"/v1/contacts/{best['contact_id']}/metrics", headers=tenant.headers)
    assert again.json()["clv_run_id"] == run["id"]


async def test_contact_metrics_of_a_contact_without_activity_and_of_others(
    client: AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    quiet = await create_contact(client, tenant, email="quiet@x.com")
    url = f"/v1/contacts/{quiet['id']}/metrics"
    response = await client.get(url, headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["order_count"], body["total_spent"], body["predicted_clv"]) == (0, "0", None)
    assert_problem(await client.get(url, headers=other_tenant.headers), 404)
    assert_problem(await client.get(url), 401)
    no_scope = await create_key(sessionmaker, tenant, [Scope.contacts_read])
    assert_problem(await client.get(url, headers=no_scope.headers), 403)
    assert_problem(
        await client.get(f"/v1/contacts/{uuid.uuid4()}/metrics", headers=tenant.headers), 404
    )
