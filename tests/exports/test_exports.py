import csv
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from tests.builders import (
    Tenant,
    assert_problem,
    create_contact,
    create_key,
    define_custom_field,
)
from tests.imports.conftest import imported


def read_csv(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith('attachment; filename="')
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


async def batch_of_contacts(client: AsyncClient, tenant: Tenant, count: int) -> None:
    for start in range(0, count, 1000):
        items = [
            {"external_id": f"X-{n}", "first_name": f"N{n}", "lifecycle_stage": "lead"}
            for n in range(start, min(start + 1000, count))
        ]
        response = await client.post(
            "/v1/contacts/batch/upsert", json={"items": items}, headers=tenant.headers
        )
        assert response.status_code == 200


class TestCsv:
    async def test_every_selected_contact_is_a_row_and_the_file_imports_back(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
        other_tenant: Tenant,
    ) -> None:
        await define_custom_field(client, tenant, "contacts", "tier")
        ada = await create_contact(
            client, tenant, email="ada@example.com", lifecycle_stage="customer",
            tags=["vip", "emea"], address={"city": "Łódź", "country": "PL"},
            custom_fields={"tier": "gold"},
        )  # fmt: skip
        await create_contact(client, tenant, email="lead@example.com", lifecycle_stage="lead")
        gone = await create_contact(client, tenant, lifecycle_stage="customer")
        deleted = await client.delete(f"/v1/contacts/{gone['id']}", headers=tenant.headers)
        assert deleted.status_code == 204
        url = "/v1/exports/contacts?lifecycle_stage=customer"
        [row] = read_csv(await client.get(url, headers=tenant.headers))
        assert row["id"] == ada["id"]
        assert row["tags"] == "vip;emea"
        assert json.loads(row["address"]) == ada["address"]
        assert row["custom_fields"] == '{"tier":"gold"}'
        assert row["owner_id"] == ""

        everything = await client.get("/v1/exports/contacts", headers=tenant.headers)
        content = everything.content
        assert len(read_csv(everything)) == 2
        mapping = {c: c for c in ("first_name", "email", "tags", "address", "custom_fields")}
        await define_custom_field(client, other_tenant, "contacts", "tier")
        result = await imported(
            client, sessionmaker, other_tenant, content, mapping=mapping, filename="x.csv"
        )
        assert result["counts"]["created"] == 2
        url = "/v1/contacts?email=ada@example.com"
        [copy] = (await client.get(url, headers=other_tenant.headers)).json()["data"]
        for field in ("first_name", "tags", "address", "custom_fields"):
            assert copy[field] == ada[field], field

    async def test_thousands_of_rows_stream_in_batches_oldest_first(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        await batch_of_contacts(client, tenant, 4500)
        rows = read_csv(await client.get("/v1/exports/contacts", headers=tenant.headers))
        assert len(rows) == 4500
        assert [row["external_id"] for row in rows[:3]] == ["X-0", "X-1", "X-2"]
        assert len({row["id"] for row in rows}) == 4500


class TestParquet:
    async def test_orders_come_with_typed_columns(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        contact = await create_contact(client, tenant)
        lines = [{"name": "Chair", "quantity": "2", "unit_price": "10.50"}]
        for status in ("paid", "pending"):
            body = {"contact_id": contact["id"], "currency": "EUR", "lines": lines,
                    "status": status, "ordered_at": "2026-03-01T09:30:00Z"}  # fmt: skip
            response = await client.post("/v1/orders", json=body, headers=tenant.headers)
            assert response.status_code == 201
        response = await client.get(
            "/v1/exports/orders?format=parquet&status=paid", headers=tenant.headers
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/vnd.apache.parquet"
        table = pq.read_table(io.BytesIO(response.content))
        assert table.num_rows == 1
        assert str(table.schema.field("ordered_at").type) == "timestamp[us, tz=UTC]"
        assert str(table.schema.field("version").type) == "int64"
        assert pa.types.is_list(table.schema.field("tags").type)
        [order] = table.to_pylist()
        assert (order["status"], order["total"], order["currency"]) == ("paid", "21.00", "EUR")
        assert order["ordered_at"].isoformat() == "2026-03-01T09:30:00+00:00"
        assert '"unit_price": "10.50"' in order["lines"]

    async def test_an_empty_selection_is_a_valid_file(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        response = await client.get("/v1/exports/companies?format=parquet", headers=tenant.headers)
        table = pq.read_table(io.BytesIO(response.content))
        assert table.num_rows == 0
        assert "name" in table.schema.names


class TestErrorsAndAccess:
    @pytest.mark.parametrize(
        "query",
        ["format=xlsx", "created_after=yesterday", "limit=10", "lifecycle_stage=king", "q="],
    )
    async def test_bad_parameters_are_422(
        self, client: AsyncClient, tenant: Tenant, query: str
    ) -> None:
        response = await client.get(f"/v1/exports/contacts?{query}", headers=tenant.headers)
        assert_problem(response, 422)

    async def test_the_resources_read_scope_is_needed_and_other_workspaces_are_unseen(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
        other_tenant: Tenant,
    ) -> None:
        await create_contact(client, tenant)
        assert_problem(await client.get("/v1/exports/contacts"), 401)
        orders_only = await create_key(sessionmaker, tenant, [Scope.orders_read])
        response = await client.get("/v1/exports/contacts", headers=orders_only.headers)
        assert_problem(response, 403)
        assert (await client.get("/v1/exports/orders", headers=orders_only.headers)).is_success
        response = await client.get("/v1/exports/contacts", headers=other_tenant.headers)
        assert read_csv(response) == []
