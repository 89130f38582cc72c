"""Test data builders: plain async functions with keyword overrides."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.roles import Role
from crm_api.core.scopes import Scope
from crm_api.workspaces.service import create_workspace, issue_api_key


@dataclass(frozen=True)
class Tenant:
    workspace_id: uuid.UUID
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def create_tenant(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    name: str = "Test",
    default_country: str | None = "US",
) -> Tenant:
    async with sessionmaker() as session:
        workspace, _, secret = await create_workspace(
            session, name, default_country=default_country
        )
        await session.commit()
    return Tenant(workspace.id, secret)


async def create_key(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    scopes: Sequence[Scope] = (),
    *,
    user_id: uuid.UUID | str | None = None,
    role: Role | None = None,
) -> Tenant:
    """Another key of the same workspace, with only these scopes and its role's (acting as a
    user if given)."""
    as_user = uuid.UUID(str(user_id)) if user_id is not None else None
    async with sessionmaker() as session:
        _, secret = await issue_api_key(
            session, tenant.workspace_id, "test", scopes, as_user, role=role
        )
        await session.commit()
    return Tenant(tenant.workspace_id, secret)


WORKSPACE_TABLES = text(
    "SELECT table_name FROM information_schema.columns "
    "WHERE table_schema = 'public' AND column_name = 'workspace_id' ORDER BY 1"
)


async def workspace_tables(session: AsyncSession) -> list[str]:
    """Every table whose rows belong to a workspace."""
    return list((await session.execute(WORKSPACE_TABLES)).scalars())


async def create_contact(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"first_name": "Ada", "last_name": "Lovelace", **fields}
    response = await client.post("/v1/contacts", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_company(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"name": "Acme", **fields}
    response = await client.post("/v1/companies", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_user(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"name": "Grace Hopper", **fields}
    response = await client.post("/v1/users", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


DEFAULT_STAGES = [
    {"name": "Qualified", "probability": 20},
    {"name": "Proposal", "probability": 60},
    {"name": "Won", "kind": "won"},
    {"name": "Lost", "kind": "lost"},
]


async def create_pipeline(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    """A pipeline with the stages Qualified (20 %), Proposal (60 %), Won and Lost by default."""
    body = {"name": "New business", "stages": DEFAULT_STAGES, **fields}
    response = await client.post("/v1/pipelines", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_deal(
    client: AsyncClient, tenant: Tenant, stage_id: str, **fields: Any
) -> dict[str, Any]:
    body = {"name": "Acme: 200 seats", "stage_id": stage_id, **fields}
    response = await client.post("/v1/deals", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_sla_policy(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    """Calendar time; first response / resolution: urgent 1 h / 4 h, normal 8 h / 40 h."""
    targets = {
        "urgent": {"first_response_minutes": 60, "resolution_minutes": 240},
        "normal": {"first_response_minutes": 480, "resolution_minutes": 2400},
    }
    body = {"name": "Standard", "targets": targets, **fields}
    response = await client.post("/v1/sla-policies", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_ticket(
    client: AsyncClient, tenant: Tenant, contact_id: str, **fields: Any
) -> dict[str, Any]:
    body = {"subject": "Invoice charged twice", "contact_id": contact_id, **fields}
    response = await client.post("/v1/tickets", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def assert_problem(response: Any, status: int, *, loc: list[Any] | None = None) -> dict[str, Any]:
    """A problem+json body with this status (and, if given, an error at or below this location)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = dict(response.json())
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"]
    if loc is not None:
        locations = [error["loc"][: len(loc)] for error in body.get("errors", [])]
        assert loc in locations, body
    return body


async def define_custom_field(
    client: AsyncClient, tenant: Tenant, resource: str, key: str, type: str = "text", **fields: Any
) -> dict[str, Any]:
    body = {"resource": resource, "key": key, "label": key.title(), "type": type, **fields}
    response = await client.post("/v1/custom-fields", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())
