"""Row-level security: every workspace table is under a policy for the role crm_service, which
owns nothing; a request runs as that role with its workspace named, so a query without any
workspace filter still sees that workspace's rows only."""

import uuid
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_api.core.auth import Principal, authenticate
from crm_api.core.db import DbSession
from crm_api.core.routing import CommitRoute
from crm_api.core.tenancy import OWN_RECORDS_ROLE, SERVICE_ROLE, enter_workspace
from crm_api.settings import Settings
from tests.builders import Tenant, assert_problem, create_contact, workspace_tables
from tests.conftest import make_app, make_client


async def test_every_workspace_table_is_under_a_policy_for_a_role_that_owns_nothing(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        tables = [*await workspace_tables(session), "workspaces"]
        guarded = text(
            "SELECT c.relname FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid "
            "WHERE c.relrowsecurity AND CAST(:role AS regrole) = ANY (p.polroles)"
        )
        policed = set((await session.execute(guarded, {"role": SERVICE_ROLE})).scalars())
        owned = text("SELECT count(*) FROM pg_class WHERE relowner = CAST(:role AS regrole)")
        owns = (await session.execute(owned, {"role": SERVICE_ROLE})).scalar_one()
        powers = text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = :role")
        privileged = (await session.execute(powers, {"role": SERVICE_ROLE})).scalar_one()
    assert len(tables) > 30
    assert set(tables) <= policed, set(tables) - policed
    assert (owns, privileged) == (0, False)


async def test_sql_without_a_workspace_filter_sees_only_the_named_workspace(
    client: AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await create_contact(client, tenant)
    await create_contact(client, other_tenant)
    async with sessionmaker() as session:
        tables = await workspace_tables(session)
        everyone = text("SELECT count(DISTINCT workspace_id) FROM contacts")
        assert (await session.execute(everyone)).scalar_one() >= 2  # the login role sees all
        await enter_workspace(session, tenant.workspace_id)
        for table in tables:
            seen = text(f"SELECT DISTINCT workspace_id FROM {table}")
            assert set((await session.execute(seen)).scalars()) <= {tenant.workspace_id}, table
        assert (await session.execute(text("SELECT count(*) FROM contacts"))).scalar_one() == 1
        workspaces = text("SELECT id FROM workspaces")
        assert list((await session.execute(workspaces)).scalars()) == [tenant.workspace_id]
        await session.rollback()


async def test_no_workspace_named_sees_nothing_and_writes_nothing_elsewhere(
    client: AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await create_contact(client, tenant)
    async with sessionmaker() as session:
        await session.execute(text(f"SET LOCAL ROLE {SERVICE_ROLE}"))
        assert (await session.execute(text("SELECT count(*) FROM contacts"))).scalar_one() == 0
        await session.rollback()
    async with sessionmaker() as session:
        await enter_workspace(session, tenant.workspace_id)
        smuggle = text(
            "INSERT INTO contacts (workspace_id, id, first_name) "
            "VALUES (:workspace_id, gen_random_uuid(), 'Mallory')"
        )
        with pytest.raises(DBAPIError, match="row-level security"):
            await session.execute(smuggle, {"workspace_id": other_tenant.workspace_id})
        await session.rollback()


def _whoami_app(settings: Settings, engine: AsyncEngine, sessionmaker: object) -> FastAPI:
    router = APIRouter(route_class=CommitRoute)

    @router.get("/whoami")
    async def whoami(
        session: DbSession, principal: Annotated[Principal, Depends(authenticate)]
    ) -> dict[str, str]:
        who = text("SELECT current_user, current_setting('crm.workspace_id', true)")
        role, workspace = (await session.execute(who)).one()
        return {"role": role, "workspace": workspace}

    @router.post("/smuggle")
    async def smuggle(
        workspace_id: uuid.UUID,
        session: DbSession,
        principal: Annotated[Principal, Depends(authenticate)],
    ) -> None:
        """A query that names the wrong workspace, as a bug in a service would."""
        await session.execute(
            text(
                "INSERT INTO contacts (workspace_id, id, first_name) "
                "VALUES (:workspace_id, gen_random_uuid(), 'Mallory')"
            ),
            {"workspace_id": workspace_id},
        )

    app = make_app(settings, engine, sessionmaker)  # type: ignore[arg-type]
    app.include_router(router)
    return app


async def test_a_request_runs_as_the_service_role_in_its_workspace_and_hands_back_neither(
    settings: Settings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: Tenant,
) -> None:
    async with make_client(_whoami_app(settings, engine, sessionmaker)) as client:
        answer = await client.get("/whoami", headers=tenant.headers)
    assert answer.json() == {"role": SERVICE_ROLE, "workspace": str(tenant.workspace_id)}
    # The test's own transaction, around the request's, is as it was (core/tenancy.py).
    async with sessionmaker() as session:
        who = text("SELECT current_user <> :role, current_setting('crm.workspace_id', true)")
        assert tuple((await session.execute(who, {"role": SERVICE_ROLE})).one()) in (
            (True, ""), (True, None),
        )  # fmt: skip


async def test_with_row_level_security_off_requests_run_as_the_login_role(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    settings = Settings(database_url=None, row_level_security=False)
    async with make_client(_whoami_app(settings, engine, sessionmaker)) as client:
        answer = await client.get("/whoami", headers=tenant.headers)
    assert answer.json()["role"] != SERVICE_ROLE


async def test_the_functions_searches_and_filters_use_are_leakproof_so_indexes_serve_them(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Under row-level security only a LEAKPROOF condition can be an index condition; without
    it a search or a tag filter reads the whole workspace (migration 4e8c1f6a2d97)."""
    async with sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT proname, proleakproof FROM pg_proc WHERE proname = ANY (:names) "
                "AND pronamespace IN ('pg_catalog'::regnamespace, 'public'::regnamespace)"
            ),
            {"names": ["textlike", "arraycontains", "arrayoverlap", "jsonb_contains", "crm_fold"]},
        )
        leakproof = {name: flag for name, flag in rows.all()}
    assert leakproof == dict.fromkeys(
        ["textlike", "arraycontains", "arrayoverlap", "jsonb_contains", "crm_fold"], True
    )


async def test_a_key_held_to_its_records_runs_as_the_own_records_role(
    sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    async with sessionmaker() as session:
        await enter_workspace(session, tenant.workspace_id, frozenset({tenant.workspace_id}))
        role = (await session.execute(text("SELECT current_user"))).scalar_one()
        await session.rollback()
    assert role == OWN_RECORDS_ROLE


async def test_a_write_the_policies_refuse_is_a_403_problem_and_stores_nothing(
    settings: Settings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    async with make_client(_whoami_app(settings, engine, sessionmaker)) as client:
        refused = await client.post(
            "/smuggle",
            params={"workspace_id": str(other_tenant.workspace_id)},
            headers=tenant.headers,
        )
    assert_problem(refused, 403)
    async with sessionmaker() as session:
        count = text("SELECT count(*) FROM contacts WHERE first_name = 'Mallory'")
        assert (await session.execute(count)).scalar_one() == 0
