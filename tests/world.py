"""One of everything the API can name, in a workspace, and the spec's operations to try on it:
for the tests that call every operation (tenant isolation, the role matrix)."""

import json
import re
from pathlib import Path
from typing import Any

from httpx import AsyncClient

from tests.builders import (
    Tenant,
    create_company,
    create_contact,
    create_deal,
    create_pipeline,
    create_sla_policy,
    create_ticket,
    create_user,
)

SPEC = json.loads((Path(__file__).resolve().parents[1] / "openapi" / "openapi.json").read_text())


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in SPEC["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
    ]


def example_body(operation: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    schema = content["application/json"]["schema"]
    if "$ref" not in schema:
        return {}
    return example_body_of(schema["$ref"].split("/")[-1])


def example_body_of(component_name: str) -> dict[str, Any]:
    component = SPEC["components"]["schemas"][component_name]
    return dict(component.get("examples", [{}])[0])


async def _post(client: AsyncClient, tenant: Tenant, path: str, body: Any) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=tenant.headers)
    assert response.status_code in (200, 201, 202), (path, response.text)
    return dict(response.json())


async def _first(client: AsyncClient, tenant: Tenant, path: str) -> str:
    response = await client.get(path, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["data"][0]["id"])


async def _lead_score_model(
    client: AsyncClient, owner: Tenant, stages: list[dict[str, Any]]
) -> str:
    """A lead scoring set-up and a model trained on 5 won and 5 lost deals."""
    scoring = example_body_of("LeadScoringInput")
    answer = await client.put("/v1/lead-scoring", json=scoring, headers=owner.headers)
    assert answer.status_code == 201, answer.text
    closed = [s["id"] for s in stages if s["kind"] != "open"]
    for index in range(10):
        contact = await create_contact(client, owner)
        await create_deal(client, owner, closed[index % 2], contact_ids=[contact["id"]])
    return str((await _post(client, owner, "/v1/lead-scoring/models", None))["id"])


async def build_world(client: AsyncClient, owner: Tenant) -> dict[str, str]:
    """One of everything the API can name, in the owner's workspace: path parameter → value."""
    ids: dict[str, str] = {}
    endpoint = await _post(
        client,
        owner,
        "/v1/webhook-endpoints",
        {"url": "https://erp.example.com/hooks", "event_types": ["contact.*"]},
    )
    ids["endpoint_id"] = endpoint["id"]
    user = await create_user(client, owner, external_id="X-1")
    ids["user_id"] = user["id"]
    company = await create_company(client, owner, external_id="X-1")
    ids["company_id"] = company["id"]
    contact = await create_contact(client, owner, company_id=company["id"], external_id="X-1")
    ids["contact_id"] = contact["id"]
    ids["external_id"] = "X-1"
    pipeline = await create_pipeline(client, owner)
    ids["pipeline_id"] = pipeline["id"]
    ids["stage_id"] = pipeline["stages"][0]["id"]
    deal = await create_deal(client, owner, pipeline["stages"][0]["id"], external_id="X-1")
    ids["deal_id"] = deal["id"]
    ids["sla_policy_id"] = (await create_sla_policy(client, owner))["id"]
    ticket = await create_ticket(client, owner, contact["id"], external_id="X-1")
    ids["ticket_id"] = ticket["id"]
    comment = {"body": "On it.", "kind": "note", "author_user_id": user["id"]}
    comments = f"/v1/tickets/{ticket['id']}/comments"
    ids["comment_id"] = (await _post(client, owner, comments, comment))["id"]
    team = await _post(client, owner, "/v1/teams", {"name": "EMEA", "member_ids": [user["id"]]})
    ids["team_id"] = team["id"]
    field = {"key": "tier", "label": "Tier", "resource": "contacts", "type": "text"}
    ids["custom_field_id"] = (await _post(client, owner, "/v1/custom-fields", field))["id"]
    for resource, extra in (
        ("interactions", {"channel": "call", "occurred_at": "2026-11-30T14:05:00Z"}),
        ("feedback", {"kind": "nps", "score": 9, "responded_at": "2026-11-30T09:12:00Z"}),
        ("orders", {"currency": "EUR", "ordered_at": "2026-11-28T10:15:00Z", "total": "10"}),
    ):
        body = {"contact_id": contact["id"], "external_id": "X-1", **extra}
        created = await _post(client, owner, f"/v1/{resource}", body)
        ids[{"feedback": "feedback_id"}.get(resource, resource[:-1] + "_id")] = created["id"]
    loyalty = await client.put(
        "/v1/loyalty/program", json=example_body_of("LoyaltyProgramInput"), headers=owner.headers
    )
    assert loyalty.status_code == 201, loyalty.text
    points = {"points": 300, "reason": "Welcome"}
    await _post(client, owner, f"/v1/contacts/{contact['id']}/loyalty/adjustments", points)
    ids["model_id"] = await _lead_score_model(client, owner, pipeline["stages"])
    playbooks = await client.put(
        "/v1/playbooks", json=example_body_of("PlaybooksInput"), headers=owner.headers
    )
    assert playbooks.status_code == 201, playbooks.text
    segment = {"name": "Static", "kind": "static"}
    ids["segment_id"] = (await _post(client, owner, "/v1/segments", segment))["id"]
    run = {"as_of": "2026-12-01T00:00:00Z"}
    ids["run_id"] = (await _post(client, owner, "/v1/metrics/clv/runs", run))["id"]
    key = await _post(client, owner, "/v1/api-keys", {"name": "ERP", "scopes": ["contacts:read"]})
    ids["api_key_id"] = key["id"]
    uploaded = await client.post(
        "/v1/imports",
        data={"resource": "contacts"},
        files={"file": ("rows.csv", b"email\nrow@example.com\n")},
        headers=owner.headers,
    )
    assert uploaded.status_code == 202, uploaded.text
    ids["import_id"] = uploaded.json()["id"]
    ids["event_id"] = await _first(client, owner, "/v1/events")
    ids["delivery_id"] = await _first(
        client, owner, f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"
    )
    return ids


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"{(\w+)}", lambda name: ids[name.group(1)], path)
