"""Workspaces cannot reach each other: for every operation of the spec that names a resource, a
key of another workspace gets 404 for this workspace's (and never changes it); every read that
names none lists nothing of this workspace's. Beneath the services, PostgreSQL enforces the same
(tests/core/test_tenancy.py)."""

import re

from httpx import AsyncClient

from tests.builders import Tenant
from tests.world import build_world, example_body, fill, operations


async def test_no_operation_reaches_another_workspace(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    ids = await build_world(client, tenant)
    owned = set(ids.values()) - {ids["external_id"]}
    checked = 0
    for method, template, operation in operations():
        path = fill(template, ids)
        names = "{" in template
        if not names and method != "GET":
            continue  # creates and searches: what they read comes from the body
        body = example_body(operation)
        # Every resource of the world is at its first version: the ETag is right, so only the
        # workspace stands in the way.
        headers = {**other_tenant.headers, "If-Match": '"1"'}
        answer = await client.request(method, path, json=body, headers=headers)
        where = f"{method} {template}"
        if "/external/" in template and method == "PUT":
            # An upsert by external id makes the caller's own record, never touches the owner's.
            assert answer.status_code in (200, 201, 422), (where, answer.text)
            assert not owned & set(re.findall(r"[0-9a-f-]{36}", answer.text)), where
        elif names:
            assert answer.status_code == 404, (where, answer.status_code, answer.text)
        else:
            assert answer.status_code < 500, (where, answer.text)
            leaked = owned & set(re.findall(r"[0-9a-f-]{36}", answer.text))
            assert not leaked, (where, leaked)
        checked += 1
    # The owner's resources are all still there, and reachable by the owner.
    for method, template, _ in operations():
        if method == "GET" and "{" in template:
            answer = await client.get(fill(template, ids), headers=tenant.headers)
            assert answer.status_code == 200, (template, answer.text)
    assert checked > 100
