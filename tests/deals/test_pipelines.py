from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from tests.builders import (
    Tenant,
    assert_problem,
    create_deal,
    create_key,
    create_pipeline,
)


def names(pipeline: dict[str, Any]) -> list[str]:
    return [stage["name"] for stage in pipeline["stages"]]


class TestCreatePipeline:
    async def test_stages_in_order_with_fixed_closed_probabilities(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        response = await client.post(
            "/v1/pipelines",
            json={
                "name": "Renewals",
                "stages": [
                    {"name": "Due", "probability": 70},
                    {"name": "Renewed", "kind": "won"},
                    {"name": "Churned", "kind": "lost", "probability": 0},
                ],
            },
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
        pipeline = response.json()
        assert [(s["position"], s["kind"], s["probability"]) for s in pipeline["stages"]] == [
            (0, "open", 70),
            (1, "won", 100),
            (2, "lost", 0),
        ]
        assert response.headers["location"].endswith(f"/v1/pipelines/{pipeline['id']}")
        assert response.headers["etag"] == '"1"'

    @pytest.mark.parametrize(
        ("stage", "loc"),
        [
            ({"name": "Open"}, ["body", "stages", 0, "probability"]),
            (
                {"name": "Won", "kind": "won", "probability": 50},
                ["body", "stages", 0, "probability"],
            ),
            ({"name": "X", "probability": 101}, ["body", "stages", 0, "probability"]),
            ({"name": "X", "kind": "maybe", "probability": 1}, ["body", "stages", 0, "kind"]),
            ({"name": " ", "probability": 1}, ["body", "stages", 0, "name"]),
        ],
    )
    async def test_invalid_stages_are_422(
        self, client: AsyncClient, tenant: Tenant, stage: dict[str, Any], loc: list[Any]
    ) -> None:
        response = await client.post(
            "/v1/pipelines", json={"name": "P", "stages": [stage]}, headers=tenant.headers
        )
        assert_problem(response, 422, loc=loc)


class TestStages:
    async def test_add_a_stage_in_the_middle(self, client: AsyncClient, tenant: Tenant) -> None:
        pipeline = await create_pipeline(client, tenant)
        response = await client.post(
            f"/v1/pipelines/{pipeline['id']}/stages",
            json={"name": "Demo", "probability": 40, "position": 1},
            headers=tenant.headers,
        )
        assert response.status_code == 201, response.text
        stage = response.json()
        assert response.headers["location"].endswith(
            f"/v1/pipelines/{pipeline['id']}/stages/{stage['id']}"
        )
        after = (await client.get(f"/v1/pipelines/{pipeline['id']}", headers=tenant.headers)).json()
        assert names(after) == ["Qualified", "Demo", "Proposal", "Won", "Lost"]
        assert [s["position"] for s in after["stages"]] == [0, 1, 2, 3, 4]
        assert after["version"] == 2
        feed = await client.get(f"/v1/events?resource_id={pipeline['id']}", headers=tenant.headers)
        created, updated = feed.json()["data"]
        assert (created["type"], updated["type"]) == ("pipeline.created", "pipeline.updated")
        assert updated["data"] == after
        old, new = updated["changes"]["stages"]["old"], updated["changes"]["stages"]["new"]
        assert (len(old), len(new)) == (4, 5)

    async def test_reorder(self, client: AsyncClient, tenant: Tenant) -> None:
        pipeline = await create_pipeline(client, tenant)
        ids = [s["id"] for s in pipeline["stages"]]
        url = f"/v1/pipelines/{pipeline['id']}/stage-order"
        wanted = [ids[1], ids[0], ids[2], ids[3]]
        response = await client.put(
            url, json={"stage_ids": wanted}, headers={**tenant.headers, "If-Match": '"1"'}
        )
        assert response.status_code == 200, response.text
        assert names(response.json()) == ["Proposal", "Qualified", "Won", "Lost"]
        assert response.headers["etag"] == '"2"'
        stale = await client.put(
            url, json={"stage_ids": ids}, headers={**tenant.headers, "If-Match": '"1"'}
        )
        assert_problem(stale, 412)
        for bad in (ids[:3], [*ids, ids[0]], [*ids[:3], pipeline["id"]]):
            response = await client.put(url, json={"stage_ids": bad}, headers=tenant.headers)
            assert_problem(response, 422, loc=["body", "stage_ids"])

    async def test_update_probability_and_kind(self, client: AsyncClient, tenant: Tenant) -> None:
        pipeline = await create_pipeline(client, tenant)
        qualified, proposal = pipeline["stages"][0], pipeline["stages"][1]
        url = f"/v1/pipelines/{pipeline['id']}/stages/{qualified['id']}"
        response = await client.patch(
            url, json={"probability": 25}, headers={**tenant.headers, "If-Match": '"1"'}
        )
        assert (response.json()["probability"], response.json()["version"]) == (25, 2)
        response = await client.patch(url, json={"kind": "won"}, headers=tenant.headers)
        assert (response.json()["kind"], response.json()["probability"]) == ("won", 100)
        response = await client.patch(url, json={"kind": "open"}, headers=tenant.headers)
        assert_problem(response, 422, loc=["body", "probability"])
        await create_deal(client, tenant, proposal["id"])
        held = f"/v1/pipelines/{pipeline['id']}/stages/{proposal['id']}"
        response = await client.patch(held, json={"kind": "lost"}, headers=tenant.headers)
        assert assert_problem(response, 409)["deal_count"] == 1
        response = await client.patch(held, json={"name": "Offer"}, headers=tenant.headers)
        assert response.json()["name"] == "Offer"

    async def test_deleting_a_stage_that_holds_deals_is_409(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        pipeline = await create_pipeline(client, tenant)
        qualified, proposal = pipeline["stages"][0], pipeline["stages"][1]
        deal = await create_deal(client, tenant, qualified["id"])
        url = f"/v1/pipelines/{pipeline['id']}/stages/{qualified['id']}"
        assert (
            assert_problem(await client.delete(url, headers=tenant.headers), 409)["deal_count"] == 1
        )
        await client.patch(
            f"/v1/deals/{deal['id']}", json={"stage_id": proposal["id"]}, headers=tenant.headers
        )
        assert (await client.delete(url, headers=tenant.headers)).status_code == 204
        assert_problem(await client.get(url, headers=tenant.headers), 404)
        after = (await client.get(f"/v1/pipelines/{pipeline['id']}", headers=tenant.headers)).json()
        assert names(after) == ["Proposal", "Won", "Lost"]
        assert [s["position"] for s in after["stages"]] == [0, 1, 2]
        response = await client.patch(
            f"/v1/deals/{deal['id']}", json={"stage_id": qualified["id"]}, headers=tenant.headers
        )
        assert_problem(response, 422, loc=["body", "stage_id"])

    async def test_a_stage_is_found_only_under_its_pipeline(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        first, second = await create_pipeline(client, tenant), await create_pipeline(client, tenant)
        url = f"/v1/pipelines/{second['id']}/stages/{first['stages'][0]['id']}"
        assert_problem(await client.get(url, headers=tenant.headers), 404)
        assert_problem(await client.delete(url, headers=tenant.headers), 404)


class TestDeletePipeline:
    async def test_only_an_empty_pipeline_goes(self, client: AsyncClient, tenant: Tenant) -> None:
        pipeline = await create_pipeline(client, tenant)
        deal = await create_deal(client, tenant, pipeline["stages"][0]["id"])
        url = f"/v1/pipelines/{pipeline['id']}"
        assert (
            assert_problem(await client.delete(url, headers=tenant.headers), 409)["deal_count"] == 1
        )
        await client.delete(f"/v1/deals/{deal['id']}", headers=tenant.headers)
        assert (await client.delete(url, headers=tenant.headers)).status_code == 204
        assert_problem(await client.get(url, headers=tenant.headers), 404)
        stage_url = f"{url}/stages/{pipeline['stages'][0]['id']}"
        assert_problem(await client.get(stage_url, headers=tenant.headers), 404)


class TestPipelineAuth:
    async def test_no_key_wrong_scope_other_workspace(
        self,
        client: AsyncClient,
        tenant: Tenant,
        other_tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        assert_problem(await client.get("/v1/pipelines"), 401)
        deals_only = await create_key(sessionmaker, tenant, [Scope.deals_write])
        assert_problem(await client.get("/v1/pipelines", headers=deals_only.headers), 403)
        reader = await create_key(sessionmaker, tenant, [Scope.pipelines_read])
        response = await client.post("/v1/pipelines", json={"name": "P"}, headers=reader.headers)
        assert_problem(response, 403)
        theirs = await create_pipeline(client, other_tenant)
        url = f"/v1/pipelines/{theirs['id']}"
        stage_url = f"{url}/stages/{theirs['stages'][0]['id']}"
        for method, path, body in [
            ("GET", url, None),
            ("PATCH", url, {"name": "x"}),
            ("DELETE", url, None),
            ("POST", f"{url}/stages", {"name": "x", "probability": 1}),
            ("PUT", f"{url}/stage-order", {"stage_ids": [theirs["stages"][0]["id"]]}),
            ("GET", stage_url, None),
            ("PATCH", stage_url, {"name": "x"}),
            ("DELETE", stage_url, None),
        ]:
            response = await client.request(method, path, json=body, headers=tenant.headers)
            assert_problem(response, 404)
