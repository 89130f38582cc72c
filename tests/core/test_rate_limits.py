"""Rate limits per API key: the RateLimit fields on every authenticated answer, a 429 problem
with Retry-After past the quota, each key its own quota, exact under concurrency, shared by
server processes through Redis, and let through when Redis does not answer."""

import asyncio
import re
import socket
import uuid

import pytest
from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_api.core.db import create_sessionmaker
from crm_api.core.roles import Role
from crm_api.core.scopes import Scope
from crm_api.settings import Settings
from tests.builders import Tenant, assert_problem, create_key
from tests.conftest import make_app, make_client

REDIS_URL = "redis://127.0.0.1:6379/0"
REMAINING = re.compile(r'"default";r=(\d+);t=(\d+)')


def limited_client(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    quota: int,
    **settings: object,
) -> AsyncClient:
    limits = Settings(
        database_url=None, rate_limit_requests=quota, rate_limit_window_seconds=60, **settings
    )
    return make_client(make_app(limits, engine, sessionmaker))


def remaining(response: Response) -> int:
    found = REMAINING.fullmatch(response.headers["ratelimit"])
    assert found, response.headers["ratelimit"]
    assert 1 <= int(found[2]) <= 60
    return int(found[1])


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


async def test_each_answer_tells_the_standing_and_past_the_quota_is_429(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    async with limited_client(engine, sessionmaker, 3) as client:
        answers = [await client.get("/v1/contacts", headers=tenant.headers) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert {a.headers["ratelimit-policy"] for a in answers} == {'"default";q=3;w=60'}
        assert [remaining(a) for a in answers] == [2, 1, 0]
        refused = await client.post("/v1/contacts", json={}, headers=tenant.headers)
        body = assert_problem(refused, 429)
        assert body["type"] == "https://iana.org/assignments/http-problem-types#quota-exceeded"
        assert body["violated-policies"] == ["default"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert remaining(refused) == 0
        # The refused write wrote nothing.
        listed = await client.get("/v1/contacts", headers=tenant.headers)
        assert listed.status_code == 429
    async with limited_client(engine, sessionmaker, 100) as unlimited:
        contacts = await unlimited.get("/v1/contacts", headers=tenant.headers)
    assert contacts.json()["data"] == []


async def test_each_key_has_its_own_quota_and_no_key_is_not_counted(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    other_key = await create_key(sessionmaker, tenant, [Scope.contacts_read])
    async with limited_client(engine, sessionmaker, 2) as client:
        for _ in range(2):
            assert (await client.get("/v1/contacts", headers=tenant.headers)).status_code == 200
        assert (await client.get("/v1/contacts", headers=tenant.headers)).status_code == 429
        other = await client.get("/v1/contacts", headers=other_key.headers)
        assert other.status_code == 200
        assert remaining(other) == 1
        anonymous = await client.get("/v1/contacts")
        assert anonymous.status_code == 401
        assert "ratelimit" not in anonymous.headers
        assert "x-request-id" in anonymous.headers


async def test_concurrent_requests_never_exceed_the_quota(
    engine: AsyncEngine, live_tenant: Tenant
) -> None:
    # Requests in parallel need connections of their own: committed data, not a test's
    # transaction.
    async with limited_client(engine, create_sessionmaker(engine), 5) as client:
        answers = await asyncio.gather(
            *(client.get("/v1/contacts", headers=live_tenant.headers) for _ in range(20))
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 5 + [429] * 15


async def test_no_quota_means_no_limit_and_no_fields(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    async with limited_client(engine, sessionmaker, 0) as client:
        for _ in range(5):
            answer = await client.get("/v1/contacts", headers=tenant.headers)
            assert answer.status_code == 200
            assert "ratelimit" not in answer.headers


@pytest.mark.skipif(not redis_answers(), reason="no Redis on 127.0.0.1:6379")
async def test_server_processes_share_the_quota_through_redis(
    engine: AsyncEngine, live_tenant: Tenant
) -> None:
    # Two apps with limiters of their own, as two server processes have.
    first = limited_client(engine, create_sessionmaker(engine), 6, redis_url=REDIS_URL)
    second = limited_client(engine, create_sessionmaker(engine), 6, redis_url=REDIS_URL)
    headers = live_tenant.headers
    async with first, second:
        answers = await asyncio.gather(
            *(c.get("/v1/contacts", headers=headers) for c in [first, second] * 8)
        )
        assert sorted(a.status_code for a in answers) == [200] * 6 + [429] * 10
        assert (await second.get("/v1/contacts", headers=headers)).status_code == 429


async def test_requests_go_through_when_redis_does_not_answer(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    url = f"redis://127.0.0.1:{closed}/0?socket_connect_timeout=0.5"
    async with limited_client(engine, sessionmaker, 1, redis_url=url) as client:
        for _ in range(3):
            answer = await client.get("/v1/contacts", headers=tenant.headers)
            assert answer.status_code == 200
            assert "ratelimit" not in answer.headers
    assert uuid.UUID(answer.headers["x-request-id"])


async def test_a_roles_quota_replaces_the_default_for_its_keys(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    erp = await create_key(sessionmaker, tenant, role=Role.integration)
    unlimited = await create_key(sessionmaker, tenant, role=Role.analyst)
    per_role = {Role.integration: 5, Role.analyst: 0}
    async with limited_client(
        engine, sessionmaker, 2, rate_limit_requests_per_role=per_role
    ) as client:
        synced = [await client.get("/v1/contacts", headers=erp.headers) for _ in range(6)]
        plain = [await client.get("/v1/contacts", headers=tenant.headers) for _ in range(3)]
        free = [await client.get("/v1/contacts", headers=unlimited.headers) for _ in range(3)]
    assert [a.status_code for a in synced] == [200] * 5 + [429]
    assert synced[0].headers["ratelimit-policy"] == '"default";q=5;w=60'
    assert [a.status_code for a in plain] == [200, 200, 429]
    assert [a.status_code for a in free] == [200] * 3
    assert "ratelimit" not in free[0].headers


def test_role_quotas_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_RATE_LIMIT_REQUESTS_PER_ROLE", '{"integration": 6000}')
    assert Settings(database_url=None).rate_limit_requests_per_role == {Role.integration: 6000}
    monkeypatch.setenv("CRM_RATE_LIMIT_REQUESTS_PER_ROLE", '{"root": 1}')
    with pytest.raises(ValueError, match="root"):
        Settings(database_url=None)
