from typing import Any

import pytest
from httpx import AsyncClient

from tests.builders import Tenant, assert_problem, create_sla_policy

BERLIN_WEEK = {
    "timezone": "Europe/Berlin",
    **{
        day: [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}]
        for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
    },
}


class TestCreatePolicy:
    async def test_targets_and_business_hours_read_back(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        policy = await create_sla_policy(client, tenant, business_hours=BERLIN_WEEK)
        assert policy["targets"] == {
            "low": None,
            "normal": {"first_response_minutes": 480, "resolution_minutes": 2400},
            "high": None,
            "urgent": {"first_response_minutes": 60, "resolution_minutes": 240},
        }
        assert policy["business_hours"]["monday"][1] == {"start": "13:00", "end": "17:00"}
        assert policy["business_hours"]["sunday"] == []
        assert policy["is_default"] is False
        got = await client.get(f"/v1/sla-policies/{policy['id']}", headers=tenant.headers)
        assert got.json() == policy

    @pytest.mark.parametrize(
        ("fields", "loc"),
        [
            ({"business_hours": {**BERLIN_WEEK, "timezone": "Mars/Olympus"}}, "timezone"),
            ({"business_hours": {"timezone": "UTC"}}, "business_hours"),
            (
                {
                    "business_hours": {
                        "timezone": "UTC",
                        "monday": [{"start": "17:00", "end": "09:00"}],
                    }
                },
                "monday",
            ),
            (
                {
                    "business_hours": {
                        "timezone": "UTC",
                        "monday": [
                            {"start": "09:00", "end": "13:00"},
                            {"start": "12:00", "end": "17:00"},
                        ],
                    }
                },
                "business_hours",
            ),
            (
                {"business_hours": {"timezone": "UTC", "monday": [{"start": "9", "end": "17:00"}]}},
                "start",
            ),
            ({"targets": {"urgent": {"first_response_minutes": 0}}}, "first_response_minutes"),
            ({"targets": {"urgent": {"resolution_minutes": 525_601}}}, "resolution_minutes"),
            ({"targets": {"critical": {}}}, "critical"),
            ({"name": ""}, "name"),
        ],
    )
    async def test_invalid_policies_are_422(
        self, client: AsyncClient, tenant: Tenant, fields: dict[str, Any], loc: str
    ) -> None:
        body = {"name": "P", **fields}
        response = await client.post("/v1/sla-policies", json=body, headers=tenant.headers)
        problem = assert_problem(response, 422)
        assert any(loc in error["loc"] for error in problem["errors"]), problem

    async def test_one_default_at_a_time(self, client: AsyncClient, tenant: Tenant) -> None:
        first = await create_sla_policy(client, tenant, is_default=True)
        second = await create_sla_policy(client, tenant, name="Premium", is_default=True)
        got = await client.get(f"/v1/sla-policies/{first['id']}", headers=tenant.headers)
        assert (got.json()["is_default"], got.json()["version"]) == (False, 2)
        events = await client.get(f"/v1/events?resource_id={first['id']}", headers=tenant.headers)
        assert [e["type"] for e in events.json()["data"]] == [
            "sla_policy.created",
            "sla_policy.updated",
        ]
        response = await client.patch(
            f"/v1/sla-policies/{first['id']}", json={"is_default": True}, headers=tenant.headers
        )
        assert response.json()["is_default"] is True
        got = await client.get(f"/v1/sla-policies/{second['id']}", headers=tenant.headers)
        assert got.json()["is_default"] is False


class TestUpdatePolicy:
    async def test_targets_merge_and_a_null_removes(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        policy = await create_sla_policy(client, tenant)
        url = f"/v1/sla-policies/{policy['id']}"
        patch = {"targets": {"urgent": {"first_response_minutes": 30}, "normal": None}}
        response = await client.patch(url, json=patch, headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert response.json()["targets"]["urgent"] == {
            "first_response_minutes": 30,
            "resolution_minutes": 240,
        }
        assert response.json()["targets"]["normal"] is None
        hours = await client.patch(
            url, json={"business_hours": BERLIN_WEEK}, headers=tenant.headers
        )
        assert hours.json()["business_hours"]["timezone"] == "Europe/Berlin"
        calendar = await client.patch(url, json={"business_hours": None}, headers=tenant.headers)
        assert (calendar.json()["business_hours"], calendar.json()["version"]) == (None, 4)
        same = await client.patch(url, json={"business_hours": None}, headers=tenant.headers)
        assert same.json()["version"] == 4

    async def test_if_match_and_bad_values(self, client: AsyncClient, tenant: Tenant) -> None:
        policy = await create_sla_policy(client, tenant)
        url = f"/v1/sla-policies/{policy['id']}"
        stale = {**tenant.headers, "If-Match": '"7"'}
        assert_problem(await client.patch(url, json={"name": "X"}, headers=stale), 412)
        assert_problem(
            await client.patch(url, json={"is_default": None}, headers=tenant.headers), 422
        )
        assert_problem(await client.patch(url, json={"name": None}, headers=tenant.headers), 422)
        assert (await client.get(url, headers=tenant.headers)).json()["version"] == 1

    async def test_deleting_keeps_the_tickets_clock(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        policy = await create_sla_policy(client, tenant, is_default=True)
        contact = (
            await client.post("/v1/contacts", json={"first_name": "A"}, headers=tenant.headers)
        ).json()
        ticket = (
            await client.post(
                "/v1/tickets",
                json={"subject": "S", "contact_id": contact["id"]},
                headers=tenant.headers,
            )
        ).json()
        url = f"/v1/sla-policies/{policy['id']}"
        assert (await client.delete(url, headers=tenant.headers)).status_code == 204
        assert_problem(await client.get(url, headers=tenant.headers), 404)
        sla = (await client.get(f"/v1/tickets/{ticket['id']}", headers=tenant.headers)).json()[
            "sla"
        ]
        assert sla["policy_id"] == policy["id"]
        assert sla["first_response"]["due_at"] == ticket["sla"]["first_response"]["due_at"]
        # A new ticket gets no policy: there is no default now.
        later = await client.post(
            "/v1/tickets",
            json={"subject": "S", "contact_id": contact["id"]},
            headers=tenant.headers,
        )
        assert later.json()["sla"]["policy_id"] is None
