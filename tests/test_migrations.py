"""The Alembic revisions: they build exactly the schema the models describe, and every one of
them can be undone and done again."""

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import make_url
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from crm_api.migrate import alembic_config
from crm_api.models import Base


async def _on_server(database_url: str, sql: str) -> list[Any]:
    """Run SQL statements; the rows of a lone query."""
    url = make_url(database_url)
    connection = await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.host or url.query.get("host"),
        port=url.port,
        database=url.database,
    )
    try:
        if sql.lstrip().upper().startswith("SELECT"):
            return list(await connection.fetch(sql))
        await connection.execute(sql)
        return []
    finally:
        await connection.close()


@pytest.fixture
def scratch_url(database_url: str) -> Iterator[str]:
    """An empty database on the test server."""
    name = f"crm_migrations_{uuid.uuid4().hex[:8]}"
    asyncio.run(_on_server(database_url, f'CREATE DATABASE "{name}"'))
    yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_on_server(database_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


def _differences(database_url: str) -> list[Any]:
    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async def run() -> list[Any]:
        engine = create_async_engine(database_url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_upgrade_matches_the_models_and_every_revision_reverses(scratch_url: str) -> None:
    config = alembic_config(scratch_url)
    command.upgrade(config, "head")
    assert _differences(scratch_url) == []
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    assert _differences(scratch_url) == []


def test_owner_ids_in_use_become_users(scratch_url: str) -> None:
    """Before users existed, owner_id was a free UUID: the revision that makes it a reference
    turns each one in use into a user, so no owner is lost."""
    config = alembic_config(scratch_url)
    command.upgrade(config, "420bda09a499")  # events and webhooks, the revision before users
    workspace, owner, contact = (uuid.uuid4() for _ in range(3))
    asyncio.run(
        _on_server(
            scratch_url,
            f"""
            INSERT INTO workspaces (id, name) VALUES ('{workspace}', 'Old');
            INSERT INTO contacts (workspace_id, id, first_name, owner_id, consent)
            VALUES ('{workspace}', '{contact}', 'Ada', '{owner}', '{{}}');
            INSERT INTO companies (workspace_id, id, name, owner_id)
            VALUES ('{workspace}', '{uuid.uuid4()}', 'Acme', '{owner}');
            """,
        )
    )
    command.upgrade(config, "head")

    [user] = asyncio.run(
        _on_server(scratch_url, "SELECT workspace_id, id, name, active FROM users")
    )
    assert (user["workspace_id"], user["id"], user["active"]) == (workspace, owner, True)
    assert user["name"] == f"Owner {owner}"


def test_custom_field_keys_in_use_become_definitions(scratch_url: str) -> None:
    """Before definitions existed, custom_fields were free: a key whose values share one JSON
    type gets a definition of that type, so what records hold stays writable."""
    config = alembic_config(scratch_url)
    command.upgrade(config, "9b5ac5372a99")  # merged contacts, the revision before definitions
    workspace = uuid.uuid4()
    contacts = [
        '{"tier": "gold", "seats": 3, "vip": true, "mixed": 1}',
        '{"tier": "silver", "seats": 4.5, "mixed": "x", "Camel": "y", "list": [1]}',
    ]
    rows = ",".join(
        f"('{workspace}', '{uuid.uuid4()}', 'Ada', '{{}}', '{fields}')" for fields in contacts
    )
    asyncio.run(
        _on_server(
            scratch_url,
            f"""
            INSERT INTO workspaces (id, name) VALUES ('{workspace}', 'Old');
            INSERT INTO contacts (workspace_id, id, first_name, consent, custom_fields)
            VALUES {rows};
            """,
        )
    )
    command.upgrade(config, "head")
    found = asyncio.run(
        _on_server(
            scratch_url,
            "SELECT workspace_id, resource, key, type FROM custom_field_definitions ORDER BY key",
        )
    )
    assert [(r["workspace_id"], r["resource"], r["key"], r["type"]) for r in found] == [
        (workspace, "contacts", "seats", "number"),
        (workspace, "contacts", "tier", "text"),
        (workspace, "contacts", "vip", "boolean"),
    ]
