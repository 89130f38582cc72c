import json
import uuid
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.imports.service import run_import_step
from tests.builders import Tenant


async def upload(
    client: AsyncClient,
    tenant: Tenant,
    content: str | bytes,
    *,
    resource: str = "contacts",
    filename: str = "rows.csv",
    mapping: dict[str, str] | None = None,
    **form: str,
) -> Response:
    data = {"resource": resource, **form}
    if mapping is not None:
        data["mapping"] = json.dumps(mapping)
    body = content.encode() if isinstance(content, str) else content
    return await client.post(
        "/v1/imports", data=data, files={"file": (filename, body)}, headers=tenant.headers
    )


async def run_to_end(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant, import_id: str
) -> None:
    """What the worker does, for this import only."""
    more = True
    while more:
        async with sessionmaker() as session:
            more = await run_import_step(session, tenant.workspace_id, uuid.UUID(import_id))
            await session.commit()


async def imported(
    client: AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    content: str | bytes,
    **options: Any,
) -> dict[str, Any]:
    """Upload, apply every row, and return the finished import."""
    response = await upload(client, tenant, content, **options)
    assert response.status_code == 202, response.text
    await run_to_end(sessionmaker, tenant, response.json()["id"])
    finished = await client.get(f"/v1/imports/{response.json()['id']}", headers=tenant.headers)
    return dict(finished.json())


async def row_errors(client: AsyncClient, tenant: Tenant, import_id: str) -> list[dict[str, Any]]:
    errors, url = [], f"/v1/imports/{import_id}/errors?limit=500"
    while url:
        page = (await client.get(url, headers=tenant.headers)).json()
        errors += page["data"]
        cursor = page["next_cursor"]
        url = f"/v1/imports/{import_id}/errors?limit=500&cursor={cursor}" if cursor else ""
    return errors
