"""`GET /v1/metrics/{nps,rfm,retention}`: loaded from PostgreSQL and computed per request, with
the figures of the fixtures in test_metrics.py, computed by hand."""

from typing import Any

import pytest
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
    create_sla_policy,
    create_ticket,
    create_user,
)


async def answer(
    client: AsyncClient, tenant: Tenant, contact: dict[str, Any], score: int, at: str, **more: Any
) -> None:
    body = {"kind": "nps", "score": score, "contact_id": contact["id"], "responded_at": at, **more}
    response = await client.post("/v1/feedback", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text


async def order(
    client: AsyncClient, tenant: Tenant, contact: dict[str, Any], day: str, total: str, **more: Any
) -> None:
    body = {"contact_id": contact["id"], "currency": "EUR", "total": total, "lines": [],
            "status": "paid", "ordered_at": f"{day}T12:00:00Z", **more}  # fmt: skip
    response = await client.post("/v1/orders", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text


async def report(client: AsyncClient, tenant: Tenant, name: str, **params: Any) -> Any:
    response = await client.get(f"/v1/metrics/{name}", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_nps_overall_by_month_and_by_channel(client: AsyncClient, tenant: Tenant) -> None:
    ada, bob = [await create_contact(client, tenant, email=f"{n}@x.com") for n in ("ada", "bob")]
    for score, at, channel in [(10, "2026-10-03", "email"), (0, "2026-10-20", "email"),
                               (9, "2026-11-02", "web"), (9, "2026-11-05", "web"),
                               (7, "2026-11-06", "web")]:  # fmt: skip
        await answer(client, tenant, ada, score, f"{at}T10:00:00Z", channel=channel)
    await answer(client, tenant, bob, 3, "2026-12-01T10:00:00Z")  # after as_of
    csat = {"kind": "csat", "score": 1, "contact_id": bob["id"]}
    assert (await client.post("/v1/feedback", json=csat, headers=tenant.headers)).is_success
    as_of = "2026-11-30T00:00:00Z"
    overall = (await report(client, tenant, "nps", as_of=as_of))["overall"]
    # 5 answers: 3 promoters, 1 passive, 1 detractor: NPS 40.
    assert (overall["responses"], overall["promoters"], overall["detractors"]) == (5, 3, 1)
    assert overall["nps"] == pytest.approx(40.0)
    by_month = await report(client, tenant, "nps", as_of=as_of, group_by="month")
    assert [(g["group"], g["nps"]) for g in by_month["groups"]] == [
        ("2026-10", 0.0), ("2026-11", pytest.approx(200 / 3)),
    ]  # fmt: skip
    by_channel = await report(client, tenant, "nps", as_of=as_of, group_by="channel",
                              start="2026-11-01T00:00:00Z")  # fmt: skip
    assert [(g["group"], g["responses"]) for g in by_channel["groups"]] == [("web", 3)]
    nothing = await report(client, tenant, "nps", as_of="2020-01-01T00:00:00Z")
    assert nothing["overall"]["responses"] == 0
    assert nothing["overall"]["nps"] is None


async def test_rfm_segments(client: AsyncClient, tenant: Tenant) -> None:
    people = {n: await create_contact(client, tenant, email=f"{n}@x.com") for n in "abcde"}
    for name, day, total in [
        ("a", "2026-03-30", "500"), ("a", "2026-03-01", "100"), ("a", "2026-02-01", "100"),
        ("b", "2026-03-20", "50"), ("b", "2026-01-10", "50"), ("c", "2026-02-15", "20"),
        ("d", "2025-10-01", "900"), ("d", "2025-09-01", "900"), ("d", "2025-08-01", "900"),
        ("e", "2025-06-01", "10"),
    ]:  # fmt: skip
        await order(client, tenant, people[name], day, total)
    await order(client, tenant, people["e"], "2026-03-01", "5000", currency="USD")
    found = await report(client, tenant, "rfm", as_of="2026-03-31T23:00:00Z")
    assert (found["currency"], found["customers"]) == ("EUR", 5)
    assert [(s["segment"], s["customers"], s["value"]) for s in found["segments"]] == [
        ("cannot_lose_them", 1, 2700.0), ("champions", 1, 700.0), ("potential_loyalists", 1, 100.0),
        ("about_to_sleep", 1, 20.0), ("hibernating", 1, 10.0),
    ]  # fmt: skip
    in_dollars = await report(client, tenant, "rfm", as_of="2026-03-31T23:00:00Z", currency="USD")
    assert [s["segment"] for s in in_dollars["segments"]] == ["champions"]
    # A deleted contact's orders leave the metrics.
    response = await client.delete(f"/v1/contacts/{people['d']['id']}", headers=tenant.headers)
    assert response.status_code == 204, response.text
    found = await report(client, tenant, "rfm", as_of="2026-03-31T23:00:00Z")
    assert found["customers"] == 4
    assert "cannot_lose_them" not in [s["segment"] for s in found["segments"]]


async def test_retention(client: AsyncClient, tenant: Tenant) -> None:
    people = {n: await create_contact(client, tenant, email=f"{n}@x.com") for n in "abcde"}
    for name, day in [("a", "2026-01-05"), ("a", "2026-02-07"), ("a", "2026-03-09"),
                      ("b", "2026-01-20"), ("b", "2026-03-02"), ("c", "2026-01-28"),
                      ("d", "2026-02-11"), ("d", "2026-02-25"), ("d", "2026-03-30"),
                      ("e", "2026-03-15")]:  # fmt: skip
        await order(client, tenant, people[name], day, "10")
    found = await report(client, tenant, "retention", as_of="2026-03-30T23:00:00Z",
                         start="2026-03-01T00:00:00Z")  # fmt: skip
    cells = {(c["cohort"], c["period"]): c["retention"] for c in found["cohorts"]}
    assert cells[("2026-01", 1)] == pytest.approx(1 / 3)
    assert cells[("2026-01", 2)] == pytest.approx(2 / 3)
    period = found["period"]
    assert (period["start_customers"], period["end_customers"], period["new_customers"]) == (
        2, 3, 1,
    )  # fmt: skip
    assert (period["reactivated_customers"], period["retention_rate"]) == (1, 1.0)
    assert found["repeat_purchase_rate"] == 0.6
    empty = await report(client, tenant, "retention", as_of="2020-01-01T00:00:00Z")
    assert (empty["cohorts"], empty["currency"], empty["repeat_purchase_rate"]) == ([], None, None)
    assert empty["period"]["retention_rate"] is None


@pytest.mark.parametrize("name", ["nps", "rfm", "retention", "pipeline", "service", "clv"])
class TestEveryReport:
    async def test_auth_and_workspaces(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
        other_tenant: Tenant,
        name: str,
    ) -> None:
        assert_problem(await client.get(f"/v1/metrics/{name}"), 401)
        no_scope = await create_key(sessionmaker, tenant, [Scope.orders_read])
        assert_problem(await client.get(f"/v1/metrics/{name}", headers=no_scope.headers), 403)
        reader = await create_key(sessionmaker, tenant, [Scope.metrics_read])
        assert (await client.get(f"/v1/metrics/{name}", headers=reader.headers)).status_code == 200
        if name == "pipeline":
            theirs = await create_pipeline(client, other_tenant)
            params = {"pipeline_id": theirs["id"]}
        else:
            segment = await client.post(
                "/v1/segments", json={"name": "S", "kind": "static"}, headers=other_tenant.headers
            )
            params = {"segment_id": segment.json()["id"]}
        response = await client.get(f"/v1/metrics/{name}", params=params, headers=tenant.headers)
        assert_problem(response, 404)

    @pytest.mark.parametrize(
        ("params", "loc"),
        [
            ({"as_of": "soon"}, ["query", "as_of"]),
            ({"start": "2026-13-01"}, ["query", "start"]),
            ({"unknown": "1"}, ["query", "unknown"]),
        ],
    )
    async def test_bad_parameters_are_422(
        self, client: AsyncClient, tenant: Tenant, name: str, params: dict[str, str], loc: list[str]
    ) -> None:
        response = await client.get(f"/v1/metrics/{name}", params=params, headers=tenant.headers)
        assert_problem(response, 422, loc=loc)


@pytest.mark.parametrize(
    ("name", "params", "loc"),
    [
        ("nps", {"group_by": "year"}, ["query", "group_by"]),
        ("rfm", {"currency": "euro"}, ["query", "currency"]),
        ("retention", {"start": "2026-02-01T00:00:00Z", "as_of": "2026-01-01T00:00:00Z"},
         ["query", "start"]),
        ("service", {"start": "2026-02-01T00:00:00Z", "as_of": "2026-01-01T00:00:00Z"},
         ["query", "start"]),
        ("pipeline", {"pipeline_id": "x"}, ["query", "pipeline_id"]),
        ("retention", {"as_of": "1034-09-20T05:10:35-19:27"}, ["query", "as_of"]),
        ("nps", {"start": "9999-01-01T00:00:00Z"}, ["query", "start"]),
        ("nps", {"segment_id": "x"}, ["query", "segment_id"]),
    ],
)  # fmt: skip
async def test_report_parameters_are_checked(
    client: AsyncClient, tenant: Tenant, name: str, params: dict[str, str], loc: list[str]
) -> None:
    response = await client.get(f"/v1/metrics/{name}", params=params, headers=tenant.headers)
    assert_problem(response, 422, loc=loc)


async def test_pipeline_through_the_api(client: AsyncClient, tenant: Tenant) -> None:
    pipeline = await create_pipeline(client, tenant)
    qualified, proposal, won, lost = (stage["id"] for stage in pipeline["stages"])
    moves = {"d1": [proposal, won], "d2": [lost], "d3": [], "d4": []}
    for name, path in moves.items():
        first = proposal if name == "d3" else qualified
        deal = await create_deal(client, tenant, first, name=name)
        for stage_id in path:
            url = f"/v1/deals/{deal['id']}"
            moved = await client.patch(url, json={"stage_id": stage_id}, headers=tenant.headers)
            assert moved.status_code == 200, moved.text
    (found,) = (await report(client, tenant, "pipeline"))["pipelines"]
    assert found["pipeline_id"] == pipeline["id"]
    assert [(s["name"], s["reached"]) for s in found["stages"]] == [
        ("Qualified", 4), ("Proposal", 2),
    ]  # fmt: skip
    assert (found["won"], found["lost"], found["win_rate"]) == (1, 1, 0.5)
    assert 0 <= found["average_cycle_days"] < 1
    before = await report(client, tenant, "pipeline", as_of="2020-01-01T00:00:00Z")
    assert before["pipelines"][0]["stages"][0]["reached"] == 0


async def test_service_through_the_api(client: AsyncClient, tenant: Tenant) -> None:
    contact = await create_contact(client, tenant, email="c@x.com")
    await create_sla_policy(client, tenant, is_default=True)
    answered = await create_ticket(client, tenant, contact["id"], priority="urgent")
    await create_ticket(client, tenant, contact["id"], priority="urgent")
    agent = await create_user(client, tenant)
    comment = {"body": "On it.", "kind": "reply", "author_user_id": agent["id"]}
    response = await client.post(
        f"/v1/tickets/{answered['id']}/comments", json=comment, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    for score in (5, 2):
        body = {"kind": "csat", "score": score, "contact_id": contact["id"]}
        assert (await client.post("/v1/feedback", json=body, headers=tenant.headers)).is_success
    found = await report(client, tenant, "service")
    assert found["tickets"] == 2
    assert found["first_response_minutes"]["count"] == 1
    # The other ticket's hour has not passed: neither met nor breached yet.
    assert found["first_response_sla"] == {"met": 1, "breached": 0, "compliance": 1.0}
    assert found["csat"] == {"responses": 2, "average": 3.5, "satisfied_share": 0.5}


async def test_a_period_reaching_back_before_year_one_is_cut_there(
    client: AsyncClient, tenant: Tenant
) -> None:
    found = await report(client, tenant, "retention", start="1900-01-01T00:00:00Z",
                         as_of="8999-12-31T00:00:00Z")  # fmt: skip
    assert found["period"]["retention_rate"] is None
