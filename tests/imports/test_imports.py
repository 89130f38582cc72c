import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_api.contacts.models import Contact
from crm_api.core.periodic import Scheduler
from crm_api.core.scopes import Scope
from crm_api.imports.service import run_waiting_imports, statistics_due
from crm_api.settings import Settings
from crm_api.tasks import periodic_tasks
from tests.builders import (
    Tenant,
    assert_problem,
    create_company,
    create_contact,
    create_key,
    define_custom_field,
)
from tests.conftest import make_app, make_client
from tests.imports.conftest import imported, row_errors, run_to_end, upload
from tests.webhooks.conftest import eventually, fast_settings, make_dispatcher, running

MAPPING = {
    "E-mail": "email",
    "Given name": "first_name",
    "Family name": "last_name",
    "Mobile": "phone",
    "Labels": "tags",
    "Town": "address.city",
    "Born": "birthday",
    "Tier": "custom_fields.tier",
    "ERP": "external_id",
}
HEADER = ",".join(MAPPING)
BAD_LINES = {
    101: ("not-an-email", ["row", "E-mail"]),
    2001: ("unreadable", None),
    5001: ("1850-01-01", ["row", "Born"]),
    9001: ("nameless", ["row"]),
}


def ten_thousand_rows() -> str:
    """10,000 contacts after the header; the rows at BAD_LINES are bad, each its own way."""
    lines = [HEADER]
    for line in range(2, 10_002):
        n = line - 2
        cells = [
            f"person{n}@example.com",
            f"Given{n}",
            f"Family{n}",
            f"+1 415 555 {n % 10_000:04d}",
            "customer;emea" if n % 2 else "",
            "Lisboa",
            "1990-05-17",
            "gold" if n % 3 == 0 else "",
            f"ERP-{n}",
        ]
        bad = BAD_LINES.get(line, (None, None))[0]
        if bad == "not-an-email":
            cells[0] = "person-at-example.com"
        elif bad == "unreadable":
            cells = cells[:3]
        elif bad == "1850-01-01":
            cells[6] = bad
        elif bad == "nameless":
            cells[:4] = ["", "", "", ""]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


async def contact_count(sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant) -> int:
    async with sessionmaker() as session:
        statement = select(func.count()).where(
            Contact.workspace_id == tenant.workspace_id, Contact.deleted_at.is_(None)
        )
        return int(await session.scalar(statement) or 0)


async def event_types(client: AsyncClient, tenant: Tenant) -> list[str]:
    types, url = [], "/v1/events?limit=500"
    while url:
        page = (await client.get(url, headers=tenant.headers)).json()
        types += [event["type"] for event in page["data"]]
        url = f"/v1/events?limit=500&cursor={page['next_cursor']}" if page["next_cursor"] else ""
    return types


async def contacts_by_email(
    client: AsyncClient, tenant: Tenant, email: str
) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/contacts?email={email}", headers=tenant.headers)
    return list(response.json()["data"])


class TestTenThousandRows:
    async def test_good_rows_apply_bad_ones_are_reported_by_line_and_a_rerun_creates_nothing(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
    ) -> None:
        content = ten_thousand_rows()
        await define_custom_field(client, tenant, "contacts", "tier")
        first = await imported(client, sessionmaker, tenant, content, mapping=MAPPING)
        assert first["status"] == "completed"
        assert (first["rows_total"], first["rows_processed"]) == (10_000, 10_000)
        assert first["counts"] == {"created": 9996, "updated": 0, "unchanged": 0, "failed": 4}
        assert await contact_count(sessionmaker, tenant) == 9996
        errors = await row_errors(client, tenant, first["id"])
        assert [e["line"] for e in errors] == sorted(BAD_LINES)
        for error in errors:
            loc = BAD_LINES[error["line"]][1]
            if loc is None:
                assert error["detail"].startswith("Has 3 cells")
            else:
                assert error["errors"][0]["loc"] == loc, error
                assert error["status"] == 422
        assert errors[0]["values"]["E-mail"] == "person-at-example.com"

        [contact] = await contacts_by_email(client, tenant, "person3@example.com")
        assert contact["first_name"] == "Given3"
        assert contact["phone"] == "+14155550003"
        assert contact["tags"] == ["customer", "emea"]
        assert contact["address"]["city"] == "Lisboa"
        assert contact["custom_fields"] == {"tier": "gold"}
        assert contact["external_id"] == "ERP-3"

        again = await imported(client, sessionmaker, tenant, content, mapping=MAPPING)
        assert again["counts"] == {"created": 0, "updated": 0, "unchanged": 9996, "failed": 4}
        assert await contact_count(sessionmaker, tenant) == 9996
        assert [e["line"] for e in await row_errors(client, tenant, again["id"])] == sorted(
            BAD_LINES
        )
        types = await event_types(client, tenant)
        assert types.count("contact.created") == 9996
        assert "contact.updated" not in types
        assert types.count("import.created") == types.count("import.completed") == 2


class TestMatching:
    async def test_rows_name_contacts_by_external_id_then_email_then_phone(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
    ) -> None:
        by_id = await create_contact(client, tenant, external_id="E-1", email="one@example.com")
        by_email = await create_contact(client, tenant, email="two@example.com")
        by_phone = await create_contact(client, tenant, phone="+1 415 555 0199")
        content = (
            "external_id,email,phone,first_name\n"
            "E-1,new-one@example.com,,Uno\n"
            "E-2,TWO@example.com,,Dos\n"
            ",,(415) 555-0199,Tres\n"
            ",four@example.com,,Cuatro\n"
        )
        result = await imported(client, sessionmaker, tenant, content)
        assert result["counts"] == {"created": 1, "updated": 3, "unchanged": 0, "failed": 0}
        assert result["mapping"] == {c: c for c in ("external_id", "email", "phone", "first_name")}
        for contact, name in ((by_id, "Uno"), (by_email, "Dos"), (by_phone, "Tres")):
            now = (await client.get(f"/v1/contacts/{contact['id']}", headers=tenant.headers)).json()
            assert now["first_name"] == name
            assert now["version"] == 2
        now = (await client.get(f"/v1/contacts/{by_email['id']}", headers=tenant.headers)).json()
        assert now["external_id"] == "E-2"  # adopted: the contact had none

    async def test_an_email_of_a_contact_with_another_external_id_or_a_shared_phone_is_409(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
    ) -> None:
        held = await create_contact(client, tenant, external_id="E-1", email="one@example.com")
        await create_contact(client, tenant, phone="+1 415 555 0100")
        await create_contact(client, tenant, phone="+1 415 555 0100")
        content = "external_id,email,phone\nE-9,one@example.com,\n,,+14155550100\n"
        result = await imported(client, sessionmaker, tenant, content)
        assert result["counts"]["failed"] == 2
        first, second = await row_errors(client, tenant, result["id"])
        assert (first["line"], first["status"]) == (2, 409)
        assert held["id"] in first["detail"]
        assert (second["line"], second["status"]) == (3, 409)
        assert "belongs to 2 contacts" in second["detail"]

    async def test_a_row_that_fails_changes_nothing_and_the_rest_of_its_chunk_is_applied(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
    ) -> None:
        kept = await create_contact(client, tenant, external_id="E-1", first_name="Old")
        await create_contact(client, tenant, email="taken@example.com")
        content = (
            "external_id,first_name,additional_emails\nE-1,New,taken@example.com\nE-2,Other,\n"
        )
        result = await imported(client, sessionmaker, tenant, content)
        assert result["counts"] == {"created": 1, "updated": 0, "unchanged": 0, "failed": 1}
        [error] = await row_errors(client, tenant, result["id"])
        assert (error["line"], error["status"]) == (2, 409)
        assert error["errors"][0]["loc"] == ["row", "additional_emails"]
        now = (await client.get(f"/v1/contacts/{kept['id']}", headers=tenant.headers)).json()
        assert (now["first_name"], now["version"]) == ("Old", 1)

    async def test_rows_naming_one_contact_apply_in_file_order(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
    ) -> None:
        content = "email,first_name,last_name\na@example.com,Ann,\nA@example.com,,Smith\n"
        result = await imported(client, sessionmaker, tenant, content)
        assert result["counts"] == {"created": 1, "updated": 1, "unchanged": 0, "failed": 0}
        [contact] = await contacts_by_email(client, tenant, "a@example.com")
        assert (contact["first_name"], contact["last_name"]) == ("Ann", "Smith")

    async def test_semicolons_a_byte_order_mark_and_unmapped_columns(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
    ) -> None:
        content = "\ufeffFirst Name;Email;Notes\nLan;lan@example.com;call back\n".encode()
        result = await imported(client, sessionmaker, tenant, content)
        assert result["mapping"] == {"First Name": "first_name", "Email": "email"}
        assert result["ignored_columns"] == ["Notes"]
        [contact] = await contacts_by_email(client, tenant, "lan@example.com")
        assert contact["first_name"] == "Lan"
        assert contact["custom_fields"] == {}


class TestUnreadableRows:
    async def test_ndjson_lines_that_are_not_objects_are_rejected_by_line(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
    ) -> None:
        content = '{"email": "a@example.com"}\n{"email": \n[1, 2]\n\n{"email": "b@example.com"}\n'
        result = await imported(client, sessionmaker, tenant, content, filename="rows.ndjson")
        assert result["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "failed": 2}
        errors = await row_errors(client, tenant, result["id"])
        assert [(e["line"], e["detail"][:14]) for e in errors] == [
            (2, "Not valid JSON"),
            (3, "Each line must"),
        ]

    async def test_a_csv_quote_left_open_rejects_the_rest_as_one_row(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
    ) -> None:
        content = 'email,first_name\na@example.com,Ann\nb@example.com,"Bo\nc@example.com,Cy\n'
        result = await imported(client, sessionmaker, tenant, content)
        assert result["counts"]["created"] == 1
        [error] = await row_errors(client, tenant, result["id"])
        assert error["line"] == 3
        assert error["detail"].startswith("Cannot be read as CSV")


class TestOtherResources:
    async def test_orders_from_ndjson_name_their_contact_by_email_or_external_id(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
    ) -> None:
        ada = await create_contact(client, tenant, email="ada@example.com", external_id="C-1")
        company = await create_company(client, tenant, name="Acme", external_id="K-1")
        line = {"name": "Chair", "quantity": "2", "unit_price": "10.50"}
        rows = [
            {
                "order_number": "SO-1",
                "contact_email": "ADA@example.com",
                "currency": "EUR",
                "lines": [line],
                "status": "paid",
                "company_external_id": "K-1",
            },
            {
                "order_number": "SO-2",
                "contact_external_id": "C-1",
                "currency": "EUR",
                "total": "99.00",
                "ordered_at": "2026-01-05T10:00:00Z",
            },
            {
                "order_number": "SO-3",
                "contact_email": "nobody@example.com",
                "currency": "EUR",
                "total": "1",
            },
            {"order_number": "SO-4", "contact_external_id": "C-1", "total": "1"},
        ]
        content = "".join(json.dumps(row) + "\n" for row in rows)
        options = {"resource": "orders", "filename": "orders.ndjson"}
        result = await imported(client, sessionmaker, tenant, content, **options)
        assert result["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "failed": 2}
        missing, no_currency = await row_errors(client, tenant, result["id"])
        assert missing["line"] == 3
        assert missing["errors"][0]["loc"] == ["row", "contact_email"]
        assert no_currency["line"] == 4
        assert no_currency["errors"][0]["loc"] == ["row", "currency"]
        orders = (await client.get("/v1/orders?sort=created_at", headers=tenant.headers)).json()
        first, second = orders["data"]
        assert (first["contact_id"], first["company_id"]) == (ada["id"], company["id"])
        assert (first["total"], first["status"]) == ("21.00", "paid")
        assert (second["total"], second["ordered_at"]) == ("99.00", "2026-01-05T10:00:00Z")

        again = await imported(client, sessionmaker, tenant, content, **options)
        assert again["counts"] == {"created": 0, "updated": 0, "unchanged": 2, "failed": 2}

    async def test_companies_are_named_by_domain(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
    ) -> None:
        acme = await create_company(client, tenant, name="Acme", domain="acme.com")
        content = (
            "name,domain,industry\nAcme Corp,https://www.acme.com/,Tools\nGlobex,globex.com,\n"
        )
        result = await imported(client, sessionmaker, tenant, content, resource="companies")
        assert result["counts"] == {"created": 1, "updated": 1, "unchanged": 0, "failed": 0}
        now = (await client.get(f"/v1/companies/{acme['id']}", headers=tenant.headers)).json()
        assert (now["name"], now["industry"]) == ("Acme Corp", "Tools")


class TestUpload:
    @pytest.mark.parametrize(
        ("content", "options", "loc", "says"),
        [
            ("email\na@example.com\n", {"mapping": {"Mail": "email"}}, "mapping", "no column"),
            ("email\na@example.com\n", {"mapping": {"email": "e_mail"}}, "mapping", "fields are"),
            ("a,b\nx,y\n", {"mapping": {"a": "email", "b": "email"}}, "mapping", "both set"),
            ("a\nx\n", {"mapping": {"a": "address.planet"}}, "mapping", "has the keys"),
            ("zip,notes\n1,x\n", {}, "mapping", "send a mapping"),
            (b"email\n\xff\xfe@example.com\n", {}, "file", "UTF-8"),
            ("", {}, "file", "empty"),
            ("email\n", {}, "file", "no rows"),
            ("email,email\nx,y\n", {}, "file", "more than once"),
            ("email\na@example.com\n", {"filename": "rows.txt"}, "format", "format"),
        ],
    )
    async def test_a_file_that_cannot_be_imported_is_422_and_nothing_is_queued(
        self,
        client: AsyncClient,
        tenant: Tenant,
        content: str | bytes,
        options: dict[str, Any],
        loc: str,
        says: str,
    ) -> None:
        response = await upload(client, tenant, content, **options)
        problem = assert_problem(response, 422, loc=["body", loc])
        assert says in problem["detail"], problem
        listed = await client.get("/v1/imports", headers=tenant.headers)
        assert listed.json()["data"] == []

    async def test_form_fields_are_checked(self, client: AsyncClient, tenant: Tenant) -> None:
        response = await upload(client, tenant, "email\nx@y.z\n", resource="deals")
        assert_problem(response, 422, loc=["body", "resource"])
        response = await client.post(
            "/v1/imports", data={"resource": "contacts", "mapping": "[1]"},
            files={"file": ("a.csv", b"email\nx@y.z\n")}, headers=tenant.headers,
        )  # fmt: skip
        assert_problem(response, 422, loc=["body", "mapping"])
        response = await client.post(
            "/v1/imports", data={"resource": "contacts"}, headers=tenant.headers
        )
        assert_problem(response, 422, loc=["body", "file"])

    async def test_files_beyond_the_import_limit_are_413_and_others_over_1_mib_are_taken(
        self,
        settings: Settings,
        app: FastAPI,
        client: AsyncClient,
        tenant: Tenant,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        rows = "".join(f"p{n}@example.com,Name {n}\n" for n in range(60_000))
        content = "email,first_name\n" + rows
        assert len(content) > 1024 * 1024
        response = await upload(client, tenant, content)
        assert response.status_code == 202, response.text
        assert response.json()["rows_total"] == 60_000
        small = settings.model_copy(update={"import_max_bytes": 1000})
        async with make_client(make_app(small, app.state.engine, sessionmaker)) as limited:
            assert_problem(await upload(limited, tenant, content), 413)

    async def test_an_idempotent_retry_queues_the_file_once(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        headers = {**tenant.headers, "Idempotency-Key": "import-1"}
        files = {"file": ("a.csv", b"email\nx@example.com\n")}
        sent = [
            await client.post("/v1/imports", data={"resource": "contacts"}, files=files,
                              headers=headers)
            for _ in range(2)
        ]  # fmt: skip
        assert [r.status_code for r in sent] == [202, 202]
        assert sent[0].json()["id"] == sent[1].json()["id"]
        assert sent[1].headers["Idempotent-Replayed"] == "true"
        assert len((await client.get("/v1/imports", headers=tenant.headers)).json()["data"]) == 1


class TestAccess:
    async def test_without_a_key_401_without_the_scopes_403(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
    ) -> None:
        response = await client.post("/v1/imports", data={"resource": "contacts"})
        assert_problem(response, 401)
        assert_problem(await client.get("/v1/imports"), 401)
        reader = await create_key(sessionmaker, tenant, [Scope.imports_read])
        assert_problem(await upload(client, reader, "email\nx@y.z\n"), 403)
        importer = await create_key(sessionmaker, tenant, [Scope.imports_write])
        problem = assert_problem(await upload(client, importer, "email\nx@y.z\n"), 403)
        assert problem["required_scope"] == "contacts:write"
        contacts_only = await create_key(sessionmaker, tenant, [Scope.contacts_write])
        assert_problem(await client.get("/v1/imports", headers=contacts_only.headers), 403)

    async def test_another_workspaces_import_is_404(
        self, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        created = (await upload(client, tenant, "email\nx@example.com\n")).json()
        for method, path in (
            ("GET", f"/v1/imports/{created['id']}"),
            ("GET", f"/v1/imports/{created['id']}/errors"),
            ("POST", f"/v1/imports/{created['id']}/cancel"),
        ):
            response = await client.request(method, path, headers=other_tenant.headers)
            assert_problem(response, 404)
        listed = await client.get("/v1/imports", headers=other_tenant.headers)
        assert listed.json()["data"] == []

    async def test_rows_are_applied_with_the_uploading_keys_rights_while_it_has_them(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
    ) -> None:
        key = await create_key(sessionmaker, tenant, [Scope.imports_write, Scope.contacts_write])
        created = (await upload(client, key, "email\nx@example.com\n")).json()
        keys = (await client.get("/v1/api-keys", headers=tenant.headers)).json()["data"]
        wanted = {"imports:write", "contacts:write"}
        key_id = next(k["id"] for k in keys if set(k["scopes"]) == wanted)
        revoked = await client.delete(f"/v1/api-keys/{key_id}", headers=tenant.headers)
        assert revoked.status_code == 204
        await run_to_end(sessionmaker, tenant, created["id"])
        result = (await client.get(f"/v1/imports/{created['id']}", headers=tenant.headers)).json()
        assert (result["status"], result["rows_processed"]) == ("cancelled", 0)
        assert await contact_count(sessionmaker, tenant) == 0


class TestCancel:
    async def test_a_cancelled_import_applies_no_more_rows_and_cannot_be_cancelled_again(
        self, client: AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant
    ) -> None:
        created = (await upload(client, tenant, "email\nx@example.com\n")).json()
        assert created["status"] == "queued"
        path = f"/v1/imports/{created['id']}/cancel"
        cancelled = await client.post(path, headers=tenant.headers)
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["finished_at"] is not None
        await run_to_end(sessionmaker, tenant, created["id"])
        assert await contact_count(sessionmaker, tenant) == 0
        problem = assert_problem(await client.post(path, headers=tenant.headers), 409)
        assert problem["status_now"] == "cancelled"
        assert "import.cancelled" in await event_types(client, tenant)


class TestWorkers:
    async def test_workers_side_by_side_apply_every_chunk_once(
        self, live_app: FastAPI, live_client: AsyncClient, live_tenant: Tenant
    ) -> None:
        rows = "".join(f"w{n}@example.com,W{n}\n" for n in range(3500))
        created = (await upload(live_client, live_tenant, "email,first_name\n" + rows)).json()
        sessionmaker = live_app.state.sessionmaker

        async def worker() -> None:
            while True:
                async with sessionmaker.begin() as session:
                    if not await run_waiting_imports(session, datetime.now(UTC)):
                        return

        await asyncio.gather(*(worker() for _ in range(3)))
        path = f"/v1/imports/{created['id']}"
        result = (await live_client.get(path, headers=live_tenant.headers)).json()
        assert result["status"] == "completed"
        assert result["counts"] == {"created": 3500, "updated": 0, "unchanged": 0, "failed": 0}
        assert await contact_count(sessionmaker, live_tenant) == 3500
        types = await event_types(live_client, live_tenant)
        assert types.count("contact.created") == 3500


@pytest.mark.parametrize(
    ("before", "after", "due"),
    [(0, 1000, True), (1000, 2000, False), (3000, 4000, True), (4000, 15_999, False),
     (15_000, 16_000, True), (255_000, 256_000, True), (256_000, 1_000_000, False)],
)  # fmt: skip
def test_statistics_are_refreshed_as_an_import_grows_fourfold(
    before: int, after: int, due: bool
) -> None:
    assert statistics_due(before, after) is due


async def test_the_worker_loop_applies_imports_while_it_delivers(
    live_app: FastAPI, live_client: AsyncClient, live_tenant: Tenant, engine: AsyncEngine
) -> None:
    """`crm-api worker` (and serve --with-worker) apply uploaded files in the background."""
    rows = "".join(f"bg{n}@example.com,B{n}\n" for n in range(1500))
    created = (await upload(live_client, live_tenant, "email,first_name\n" + rows)).json()
    dispatcher = make_dispatcher(live_app, engine)
    dispatcher.scheduler = Scheduler(
        live_app.state.sessionmaker, periodic_tasks(fast_settings(import_scan_seconds=0.05))
    )
    path = f"/v1/imports/{created['id']}"

    async def completed() -> bool:
        response = await live_client.get(path, headers=live_tenant.headers)
        return bool(response.json()["status"] == "completed")

    async with running(dispatcher):
        await eventually(completed)
    result = (await live_client.get(path, headers=live_tenant.headers)).json()
    assert result["counts"]["created"] == 1500
