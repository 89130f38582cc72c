"""`POST /v1/{companies,deals,tickets,orders}/search`: the filter language of contacts, over each
resource's own fields, its custom fields and the records it points at."""

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.core.scopes import Scope
from tests.builders import (
    Tenant,
    assert_problem,
    create_company,
    create_contact,
    create_deal,
    create_key,
    create_pipeline,
    create_ticket,
    define_custom_field,
)

# What each search names its records by in these tests, and the scope that reads them.
LABELS = {"companies": "name", "deals": "name", "tickets": "subject", "orders": "order_number"}
READ_SCOPES = {
    "companies": Scope.companies_read,
    "deals": Scope.deals_read,
    "tickets": Scope.tickets_read,
    "orders": Scope.orders_read,
}


def where(field: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


async def search(
    client: AsyncClient, tenant: Tenant, resource: str, filter: Any, **body: Any
) -> Any:
    return await client.post(
        f"/v1/{resource}/search", json={"filter": filter, **body}, headers=tenant.headers
    )


async def found(client: AsyncClient, tenant: Tenant, resource: str, filter: Any) -> list[str]:
    response = await search(client, tenant, resource, filter, limit=500)
    assert response.status_code == 200, response.text
    return sorted(record[LABELS[resource]] for record in response.json()["data"])


async def place_order(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"currency": "EUR", "total": "10.00", "lines": [], **fields}
    response = await client.post("/v1/orders", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
async def book(client: AsyncClient, tenant: Tenant) -> dict[str, Any]:
    """Two companies, two contacts, and deals, tickets and orders of theirs."""
    for resource in ("companies", "deals", "tickets", "orders"):
        await define_custom_field(client, tenant, resource, "region", "select",
                                  options=[{"value": "emea"}, {"value": "apac"}])  # fmt: skip
    soft = await create_company(client, tenant, name="Soft", industry="Software", size="large",
                                tags=["key"], custom_fields={"region": "emea"},
                                address={"city": "Berlin", "country": "DE"})  # fmt: skip
    shop = await create_company(client, tenant, name="Shop", industry="Retail", size="small")
    ada = await create_contact(client, tenant, email="ada@x.com", lifecycle_stage="customer",
                               company_id=soft["id"])  # fmt: skip
    bob = await create_contact(client, tenant, email="bob@x.com", company_id=shop["id"])
    pipeline = await create_pipeline(client, tenant)
    open_stage, won_stage = pipeline["stages"][0]["id"], pipeline["stages"][-2]["id"]
    await create_deal(client, tenant, open_stage, name="Big", amount="50000", currency="EUR",
                      company_id=soft["id"], expected_close_date="2027-03-31",
                      custom_fields={"region": "emea"})  # fmt: skip
    await create_deal(client, tenant, won_stage, name="Small", amount="900", currency="USD",
                      company_id=shop["id"])  # fmt: skip
    await create_deal(client, tenant, open_stage, name="Loose")
    await create_ticket(client, tenant, ada["id"], subject="Broken", priority="urgent",
                        channel="email", company_id=soft["id"],
                        custom_fields={"region": "apac"})  # fmt: skip
    await create_ticket(client, tenant, bob["id"], subject="Invoice", category="billing")
    await place_order(client, tenant, contact_id=ada["id"], order_number="SO-1", total="120.50",
                      status="paid", ordered_at="2026-11-01T10:00:00Z", company_id=soft["id"],
                      custom_fields={"region": "emea"})  # fmt: skip
    await place_order(client, tenant, contact_id=bob["id"], order_number="SO-2", total="30",
                      ordered_at="2026-11-20T10:00:00Z")  # fmt: skip
    return {"soft": soft, "shop": shop, "ada": ada, "bob": bob, "pipeline": pipeline}


@pytest.mark.parametrize(
    ("resource", "filter", "labels"),
    [
        ("companies", where("industry", "eq", "Software"), ["Soft"]),
        ("companies", where("size", "in", ["small", "medium"]), ["Shop"]),
        ("companies", where("tags", "contains", "key"), ["Soft"]),
        ("companies", where("address.city", "starts_with", "ber"), ["Soft"]),
        ("companies", where("custom_fields.region", "neq", "emea"), ["Shop"]),
        ("deals", where("amount", "gte", 1000), ["Big"]),
        ("deals", where("amount", "is_null", True), ["Loose"]),
        ("deals", where("status", "eq", "won"), ["Small"]),
        ("deals", where("expected_close_date", "between", ["2027-01-01", "2027-12-31"]), ["Big"]),
        ("deals", where("company.industry", "eq", "Retail"), ["Small"]),
        ("deals", where("company.size", "neq", "large"), ["Loose", "Small"]),
        ("deals", where("custom_fields.region", "eq", "emea"), ["Big"]),
        (
            "deals",
            {"any": [where("currency", "eq", "USD"), where("name", "contains", "OOS")]},
            ["Loose", "Small"],
        ),
        ("tickets", where("priority", "eq", "urgent"), ["Broken"]),
        ("tickets", where("channel", "is_null", True), ["Invoice"]),
        ("tickets", where("category", "eq", "billing"), ["Invoice"]),
        ("tickets", where("contact.email", "eq", "bob@x.com"), ["Invoice"]),
        ("tickets", where("contact.lifecycle_stage", "eq", "customer"), ["Broken"]),
        ("tickets", where("company.industry", "is_null", True), ["Invoice"]),
        ("tickets", where("custom_fields.region", "eq", "apac"), ["Broken"]),
        ("tickets", where("status", "eq", "new"), ["Broken", "Invoice"]),
        ("orders", where("total", "gt", "100"), ["SO-1"]),
        ("orders", where("status", "eq", "paid"), ["SO-1"]),
        ("orders", where("ordered_at", "gte", "2026-11-10T00:00:00+01:00"), ["SO-2"]),
        ("orders", where("paid_at", "is_null", False), ["SO-1"]),
        ("orders", where("contact.email", "contains", "ADA"), ["SO-1"]),
        ("orders", where("company.name", "eq", "Soft"), ["SO-1"]),
        ("orders", where("custom_fields.region", "is_null", True), ["SO-2"]),
    ],
)
async def test_each_resource_filters_on_its_fields_and_relations(
    client: AsyncClient,
    tenant: Tenant,
    book: dict[str, Any],
    resource: str,
    filter: dict[str, Any],
    labels: list[str],
) -> None:
    assert await found(client, tenant, resource, filter) == labels


async def test_a_deleted_related_record_matches_nothing(
    client: AsyncClient, tenant: Tenant, book: dict[str, Any]
) -> None:
    response = await client.delete(f"/v1/companies/{book['shop']['id']}", headers=tenant.headers)
    assert response.status_code == 204, response.text
    assert await found(client, tenant, "deals", where("company.industry", "eq", "Retail")) == []
    assert await found(client, tenant, "deals", where("company.name", "is_null", True)) == [
        "Loose",
        "Small",
    ]


async def test_orders_are_newest_first_unless_sorted(
    client: AsyncClient, tenant: Tenant, book: dict[str, Any]
) -> None:
    newest = await search(client, tenant, "orders", None)
    assert [o["order_number"] for o in newest.json()["data"]] == ["SO-2", "SO-1"]
    cheapest = await search(client, tenant, "orders", None, sort="total")
    assert [o["order_number"] for o in cheapest.json()["data"]] == ["SO-2", "SO-1"]
    dearest = await search(client, tenant, "orders", None, sort="-total")
    assert [o["order_number"] for o in dearest.json()["data"]] == ["SO-1", "SO-2"]


async def test_tickets_come_with_their_sla_clock(
    client: AsyncClient, tenant: Tenant, book: dict[str, Any]
) -> None:
    response = await search(client, tenant, "tickets", where("subject", "eq", "Broken"))
    listed = await client.get("/v1/tickets", headers=tenant.headers)
    by_subject = {t["subject"]: t for t in listed.json()["data"]}
    assert response.json()["data"] == [by_subject["Broken"]]


@pytest.mark.parametrize("resource", list(LABELS))
class TestEveryResource:
    @pytest.mark.parametrize(
        ("filter", "loc"),
        [
            (where("password", "eq", "x"), ["body", "filter", "field"]),
            (where("created_at", "contains", "x"), ["body", "filter", "op"]),
            (where("created_at", "gte", "last week"), ["body", "filter", "value"]),
            (where("custom_fields.nope", "eq", "x"), ["body", "filter", "field"]),
            (where("company.password", "eq", "x"), ["body", "filter", "field"]),
            ({"any": []}, ["body", "filter"]),
        ],
    )
    async def test_a_bad_filter_is_422_naming_the_part(
        self, client: AsyncClient, tenant: Tenant, resource: str, filter: Any, loc: list[Any]
    ) -> None:
        assert_problem(await search(client, tenant, resource, filter), 422, loc=loc)

    async def test_a_bad_sort_or_cursor_is_422_in_the_body(
        self, client: AsyncClient, tenant: Tenant, resource: str
    ) -> None:
        response = await search(client, tenant, resource, None, sort="password")
        assert_problem(response, 422, loc=["body", "sort"])
        response = await search(client, tenant, resource, None, cursor="not-a-cursor")
        assert_problem(response, 422, loc=["body", "cursor"])

    async def test_injection_is_only_a_value(
        self, client: AsyncClient, tenant: Tenant, book: dict[str, Any], resource: str
    ) -> None:
        for hostile in ("x' OR '1'='1", "%", "_", "\\", "'; DROP TABLE contacts; --"):
            assert await found(client, tenant, resource, where("external_id", "eq", hostile)) == []
            filter = where("external_id", "contains", hostile)
            assert await found(client, tenant, resource, filter) == []
        everything = await found(client, tenant, resource, where("external_id", "is_null", True))
        assert len(everything) >= 2

    async def test_auth_and_workspaces(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
        other_tenant: Tenant,
        book: dict[str, Any],
        resource: str,
    ) -> None:
        filter = where("created_at", "is_null", False)
        unauthenticated = await client.post(f"/v1/{resource}/search", json={"filter": filter})
        assert_problem(unauthenticated, 401)
        other_scopes = [s for s in READ_SCOPES.values() if s is not READ_SCOPES[resource]]
        no_scope = await create_key(sessionmaker, tenant, other_scopes)
        assert_problem(await search(client, no_scope, resource, filter), 403)
        reader = await create_key(sessionmaker, tenant, [READ_SCOPES[resource]])
        assert len(await found(client, reader, resource, filter)) >= 2
        assert await found(client, other_tenant, resource, filter) == []
        # The other workspace has no `region`: its filter on it is refused.
        other = await search(
            client, other_tenant, resource, where("custom_fields.region", "eq", "emea")
        )
        assert_problem(other, 422, loc=["body", "filter", "field"])
