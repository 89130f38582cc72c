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
    create_key,
    define_custom_field,
)


async def search(client: AsyncClient, tenant: Tenant, filter: Any, **body: Any) -> Any:
    return await client.post(
        "/v1/contacts/search", json={"filter": filter, **body}, headers=tenant.headers
    )


async def found(client: AsyncClient, tenant: Tenant, filter: Any) -> list[str]:
    response = await search(client, tenant, filter, limit=500)
    assert response.status_code == 200, response.text
    return [c["email"] for c in response.json()["data"]]


def where(field: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


@pytest.fixture
async def people(client: AsyncClient, tenant: Tenant) -> None:
    await define_custom_field(
        client,
        tenant,
        "contacts",
        "tier",
        "select",
        options=[{"value": "gold"}, {"value": "silver"}],
    )
    await define_custom_field(client, tenant, "contacts", "seats", "number")
    software = await create_company(client, tenant, name="Soft", industry="Software", size="large")
    retail = await create_company(client, tenant, name="Shop", industry="Retail", size="small")
    await create_contact(
        client, tenant, email="ada@x.com", lifecycle_stage="customer", tags=["vip"],
        company_id=software["id"], custom_fields={"tier": "gold", "seats": 10},
        address={"city": "Berlin", "country": "DE"}, birthday="1990-05-17",
    )  # fmt: skip
    await create_contact(
        client, tenant, email="bob@x.com", lifecycle_stage="lead", tags=["newsletter"],
        company_id=retail["id"], custom_fields={"tier": "silver", "seats": 2},
    )  # fmt: skip
    await create_contact(client, tenant, email="cy@x.com", first_name="Cy", last_name="Young")


class TestConditions:
    @pytest.mark.parametrize(
        ("filter", "emails"),
        [
            (where("lifecycle_stage", "eq", "customer"), ["ada@x.com"]),
            (where("lifecycle_stage", "neq", "customer"), ["bob@x.com", "cy@x.com"]),
            (where("lifecycle_stage", "is_null", True), ["cy@x.com"]),
            (where("lifecycle_stage", "in", ["lead", "customer"]), ["ada@x.com", "bob@x.com"]),
            (where("lifecycle_stage", "nin", ["lead"]), ["ada@x.com", "cy@x.com"]),
            (where("email", "starts_with", "AD"), ["ada@x.com"]),
            (where("email", "contains", "OB"), ["bob@x.com"]),
            (where("tags", "contains", "vip"), ["ada@x.com"]),
            (where("tags", "is_null", True), ["cy@x.com"]),
            (where("tags", "nin", ["vip"]), ["bob@x.com", "cy@x.com"]),
            (where("birthday", "between", ["1990-01-01", "1990-12-31"]), ["ada@x.com"]),
            (where("address.country", "eq", "DE"), ["ada@x.com"]),
            (where("company.industry", "eq", "Software"), ["ada@x.com"]),
            (where("company.industry", "neq", "Software"), ["bob@x.com", "cy@x.com"]),
            (where("company.size", "is_null", True), ["cy@x.com"]),
            (where("custom_fields.tier", "eq", "gold"), ["ada@x.com"]),
            (where("custom_fields.seats", "gte", 2), ["ada@x.com", "bob@x.com"]),
            (where("custom_fields.seats", "lt", "2.5"), ["bob@x.com"]),
            (where("custom_fields.seats", "is_null", True), ["cy@x.com"]),
            (where("metrics.order_count", "eq", 0), ["ada@x.com", "bob@x.com", "cy@x.com"]),
            (where("metrics.order_count", "gt", 0), []),
            (where("metrics.last_order_at", "is_null", False), []),
            (
                {
                    "any": [
                        {
                            "all": [
                                where("company.size", "eq", "small"),
                                where("tags", "contains", "newsletter"),
                            ]
                        },
                        where("first_name", "eq", "Cy"),
                    ]
                },
                ["bob@x.com", "cy@x.com"],
            ),
        ],
    )
    async def test_each_operator(
        self,
        client: AsyncClient,
        tenant: Tenant,
        people: None,
        filter: dict[str, Any],
        emails: list[str],
    ) -> None:
        assert sorted(await found(client, tenant, filter)) == emails


class TestRefusals:
    @pytest.mark.parametrize(
        ("filter", "loc"),
        [
            (where("password", "eq", "x"), ["body", "filter", "field"]),
            (where("lifecycle_stage", "gt", "lead"), ["body", "filter", "op"]),
            (where("lifecycle_stage", "eq", "emperor"), ["body", "filter", "value"]),
            (where("birthday", "eq", "yesterday"), ["body", "filter", "value"]),
            (
                where("birthday", "between", ["2000-01-01", "1990-01-01"]),
                ["body", "filter", "value"],
            ),
            (where("tags", "in", []), ["body", "filter", "value"]),
            (where("tags", "is_null", "yes"), ["body", "filter", "value"]),
            (where("custom_fields.nope", "eq", "x"), ["body", "filter", "field"]),
            (where("company.custom_fields.x", "eq", "x"), ["body", "filter", "field"]),
            (
                {"all": [where("email", "eq", "a"), where("id", "eq", "1")]},
                ["body", "filter", "all", 1, "value"],
            ),
            ({"all": []}, ["body", "filter"]),
            (
                {"all": [{"any": [{"all": [{"any": [{"all": [where("email", "eq", "a")]}]}]}]}]},
                ["body", "filter"],
            ),
            ({"all": [where("email", "eq", "a")] * 51}, ["body", "filter"]),
            ({"field": "email", "op": "eq", "value": "a", "extra": 1}, ["body", "filter"]),
        ],
    )
    async def test_a_bad_filter_is_422_naming_the_part(
        self, client: AsyncClient, tenant: Tenant, filter: Any, loc: list[Any]
    ) -> None:
        assert_problem(await search(client, tenant, filter), 422, loc=loc)

    async def test_injection_is_only_a_value(
        self, client: AsyncClient, tenant: Tenant, people: None
    ) -> None:
        for hostile in ("x' OR '1'='1", "%", "_", "\\", "'; DROP TABLE contacts; --"):
            assert await found(client, tenant, where("email", "contains", hostile)) == []
            assert await found(client, tenant, where("email", "eq", hostile)) == []
        assert len(await found(client, tenant, where("email", "contains", "@"))) == 3

    async def test_auth_and_workspaces(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
        other_tenant: Tenant,
        people: None,
    ) -> None:
        filter = where("email", "contains", "x.com")
        assert_problem(await client.post("/v1/contacts/search", json={"filter": filter}), 401)
        no_scope = await create_key(sessionmaker, tenant, [Scope.companies_read])
        assert_problem(await search(client, no_scope, filter), 403)
        assert await found(client, other_tenant, filter) == []
        # The other workspace has no `tier`: its filter on it is refused.
        assert_problem(
            await search(client, other_tenant, where("custom_fields.tier", "eq", "gold")), 422
        )


async def test_pages_follow_the_filter_and_sort(client: AsyncClient, tenant: Tenant) -> None:
    for i in range(7):
        await create_contact(client, tenant, email=f"p{i}@x.com", tags=["page"] if i % 2 else [])
    filter = where("tags", "contains", "page")
    first = await search(client, tenant, filter, limit=2, sort="-created_at")
    body = first.json()
    assert [c["email"] for c in body["data"]] == ["p5@x.com", "p3@x.com"]
    second = await search(
        client, tenant, filter, limit=2, sort="-created_at", cursor=body["next_cursor"]
    )
    assert [c["email"] for c in second.json()["data"]] == ["p1@x.com"]
    assert second.json()["next_cursor"] is None
    other = await search(
        client,
        tenant,
        where("tags", "nin", ["page"]),
        limit=2,
        sort="-created_at",
        cursor=body["next_cursor"],
    )
    assert_problem(other, 422, loc=["body", "cursor"])
