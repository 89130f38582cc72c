"""A real PostgreSQL for the whole run: the server `CRM_TEST_DATABASE_URL` names, else an embedded
one. A fresh database is created and migrated by Alembic once; each test runs in a transaction
that is rolled back, so the app's commits only release savepoints."""

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from crm_api.app import create_app
from crm_api.core.db import create_engine, create_sessionmaker
from crm_api.core.embedded import start_embedded_postgres, to_asyncpg_url
from crm_api.migrate import upgrade_to_head
from crm_api.settings import Settings
from tests.builders import Tenant, create_tenant

# Webhook receivers in the tests listen on loopback over plain HTTP.
os.environ.setdefault("CRM_WEBHOOKS_ALLOW_INSECURE", "true")


async def _admin_execute(server_url: str, sql: str) -> None:
    url = make_url(server_url)
    connection = await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.host,
        port=url.port,
        database=url.database or "postgres",
    )
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = f"crm_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    server_url = os.environ.get("CRM_TEST_DATABASE_URL")
    if server_url:
        import asyncio

        server_url = to_asyncpg_url(server_url)
        asyncio.run(_admin_execute(server_url, f'CREATE DATABASE "{name}"'))
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        upgrade_to_head(url)
        yield url
        asyncio.run(_admin_execute(server_url, f'DROP DATABASE "{name}" WITH (FORCE)'))
    else:
        with tempfile.TemporaryDirectory(prefix="crm-test-pg-") as folder:
            url = start_embedded_postgres(Path(folder) / "pgdata", name, cleanup_mode="delete")
            upgrade_to_head(url)
            yield url


@pytest.fixture(scope="session")
def settings() -> Settings:
    # A quota no test reaches: the limiter counts every request; tests/core/test_rate_limits.py
    # builds apps with small ones.
    return Settings(database_url=None, rate_limit_requests=1_000_000)


@pytest.fixture(scope="session")
async def engine(database_url: str, settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, settings)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield connection
        await transaction.rollback()


@pytest.fixture
def sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        bind=connection,
        expire_on_commit=False,
        autoflush=False,
        join_transaction_mode="create_savepoint",
    )


def bind(
    app: FastAPI, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> FastAPI:
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker
    return app


def make_app(
    settings: Settings, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> FastAPI:
    return bind(create_app(settings), engine, sessionmaker)


def make_client(app: FastAPI) -> AsyncClient:
    return AsyncClient(transport=ASGITransport(app=app), base_url="http://test")


# Building the app takes about 0.3 s, so the run builds two and each test gives them its engine
# and sessionmaker: `app` for tests in a rolled-back transaction, `live_app` for those that commit.
@pytest.fixture(scope="session")
def _apps(settings: Settings) -> tuple[FastAPI, FastAPI]:
    return create_app(settings), create_app(settings)


@pytest.fixture
def app(
    _apps: tuple[FastAPI, FastAPI],
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> FastAPI:
    return bind(_apps[0], engine, sessionmaker)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with make_client(app) as client:
        yield client


@pytest.fixture
async def tenant(sessionmaker: async_sessionmaker[AsyncSession]) -> Tenant:
    return await create_tenant(sessionmaker)


@pytest.fixture
async def other_tenant(sessionmaker: async_sessionmaker[AsyncSession]) -> Tenant:
    return await create_tenant(sessionmaker, name="Other")


# Concurrency tests need separate connections that really commit: a "live" app on the engine.
# Their data lives in a workspace of its own, so it cannot disturb other tests.


@pytest.fixture
def live_app(_apps: tuple[FastAPI, FastAPI], engine: AsyncEngine) -> FastAPI:
    return bind(_apps[1], engine, create_sessionmaker(engine))


@pytest.fixture
async def live_client(live_app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with make_client(live_app) as client:
        yield client


@pytest.fixture
async def live_tenant(live_app: FastAPI) -> Tenant:
    return await create_tenant(live_app.state.sessionmaker, name="Live")
