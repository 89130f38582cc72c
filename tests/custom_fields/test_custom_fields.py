import asyncio
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

TIERS = [{"value": "gold", "label": "Gold"}, {"value": "silver"}]


async def write_contact(client: AsyncClient, tenant: Tenant, custom_fields: Any) -> Any:
    body = {"first_name": "Ada", "custom_fields": custom_fields}
    return await client.post("/v1/contacts", json=body, headers=tenant.headers)


class TestDefinitions:
    async def test_a_select_reads_back_and_lists_by_resource(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        tier = await define_custom_field(
            client, tenant, "contacts", "tier", "select", options=TIERS
        )
        assert tier["options"] == [
            {"value": "gold", "label": "Gold"},
            {"value": "silver", "label": "silver"},
        ]
        assert (tier["required"], tier["version"]) == (False, 1)
        await define_custom_field(client, tenant, "companies", "region")
        got = await client.get(f"/v1/custom-fields/{tier['id']}", headers=tenant.headers)
        assert got.json() == tier
        listed = await client.get("/v1/custom-fields?resource=contacts", headers=tenant.headers)
        assert [d["key"] for d in listed.json()["data"]] == ["tier"]

    @pytest.mark.parametrize(
        ("body", "status", "loc"),
        [
            ({"key": "Tier"}, 422, ["body", "key"]),
            ({"key": "9lives"}, 422, ["body", "key"]),
            ({"type": "select"}, 422, ["body", "options"]),
            ({"type": "text", "options": [{"value": "a"}]}, 422, ["body", "options"]),
            ({"type": "select", "options": [{"value": "a"}, {"value": "a"}]}, 422, ["body"]),
            ({"type": "colour"}, 422, ["body", "type"]),
            ({"resource": "users"}, 422, ["body", "resource"]),
        ],
    )
    async def test_bad_definitions_are_422(
        self,
        client: AsyncClient,
        tenant: Tenant,
        body: dict[str, Any],
        status: int,
        loc: list[str],
    ) -> None:
        full = {"resource": "contacts", "key": "tier", "label": "Tier", "type": "text", **body}
        response = await client.post("/v1/custom-fields", json=full, headers=tenant.headers)
        assert_problem(response, status, loc=loc)

    async def test_a_key_is_defined_once_per_resource(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        await define_custom_field(client, tenant, "contacts", "tier")
        await define_custom_field(client, tenant, "deals", "tier")
        body = {"resource": "contacts", "key": "tier", "label": "Again", "type": "number"}
        response = await client.post("/v1/custom-fields", json=body, headers=tenant.headers)
        assert_problem(response, 409, loc=["body", "key"])

    async def test_auth(
        self,
        client: AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant: Tenant,
        other_tenant: Tenant,
    ) -> None:
        tier = await define_custom_field(client, tenant, "contacts", "tier")
        url = f"/v1/custom-fields/{tier['id']}"
        assert_problem(await client.get(url), 401)
        reader = await create_key(sessionmaker, tenant, [Scope.custom_fields_read])
        assert (await client.get(url, headers=reader.headers)).status_code == 200
        patch = await client.patch(url, json={"label": "x"}, headers=reader.headers)
        assert_problem(patch, 403)
        assert_problem(await client.get(url, headers=other_tenant.headers), 404)
        other_patch = await client.patch(url, json={"label": "x"}, headers=other_tenant.headers)
        assert_problem(other_patch, 404)
        assert_problem(await client.delete(url, headers=other_tenant.headers), 404)
        # The other workspace may define the same key, and its records are checked by its own.
        await define_custom_field(client, other_tenant, "contacts", "tier", "number")
        assert (await write_contact(client, other_tenant, {"tier": 3})).status_code == 201
        assert_problem(await write_contact(client, tenant, {"tier": 3}), 422)

    async def test_updates_need_a_matching_if_match_and_announce_themselves(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        tier = await define_custom_field(client, tenant, "contacts", "tier")
        url = f"/v1/custom-fields/{tier['id']}"
        stale = await client.patch(
            url, json={"label": "x"}, headers={**tenant.headers, "If-Match": '"9"'}
        )
        assert_problem(stale, 412)
        assert_problem(await client.patch(url, json={"type": None}, headers=tenant.headers), 422)
        updated = await client.patch(
            url, json={"label": "Tier", "description": "Loyalty"}, headers=tenant.headers
        )
        assert updated.json()["version"] == 2
        events = await client.get("/v1/events?type=custom_field.updated", headers=tenant.headers)
        [event] = events.json()["data"]
        assert event["changes"]["description"] == {"old": None, "new": "Loyalty"}


class TestWrites:
    async def test_every_type_takes_its_values_and_refuses_others(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        cases: dict[str, tuple[Any, Any]] = {
            "text": ("gold", 5),
            "number": (4.5, "4.5"),
            "decimal": ("12.50", 12.5),
            "date": ("2026-02-28", "2026-02-30"),
            "datetime": ("2026-02-28T09:30:00+01:00", "2026-02-28 09:30"),
            "boolean": (True, "yes"),
            "select": ("gold", "bronze"),
            "multi_select": (["gold", "silver"], ["gold", "bronze"]),
            "email": ("ada@example.com", "ada@"),
            "url": ("https://example.com/a", "ftp://example.com"),
        }
        for type in cases:
            options = TIERS if "select" in type else []
            await define_custom_field(
                client, tenant, "contacts", f"f_{type}", type, options=options
            )
        good = {f"f_{type}": fits for type, (fits, _) in cases.items()}
        created = await write_contact(client, tenant, good)
        assert created.status_code == 201, created.text
        assert created.json()["custom_fields"] == good
        for type, (_, unfit) in cases.items():
            response = await write_contact(client, tenant, {f"f_{type}": unfit})
            assert_problem(response, 422, loc=["body", "custom_fields", f"f_{type}"])

    async def test_an_undefined_key_is_refused_on_every_path(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        response = await write_contact(client, tenant, {"tier": "gold"})
        body = assert_problem(response, 422, loc=["body", "custom_fields", "tier"])
        assert "tier" in body["detail"]
        company = await create_company(client, tenant)
        patch = await client.patch(
            f"/v1/companies/{company['id']}",
            json={"custom_fields": {"tier": "gold"}},
            headers=tenant.headers,
        )
        assert_problem(patch, 422, loc=["body", "custom_fields", "tier"])
        batch = await client.post(
            "/v1/contacts/batch/upsert",
            json={
                "items": [
                    {"external_id": "A", "first_name": "A"},
                    {"external_id": "B", "first_name": "B", "custom_fields": {"tier": 1}},
                ]
            },
            headers=tenant.headers,
        )
        results = batch.json()["results"]
        assert results[0]["status"] == "created"
        assert results[1]["status"] == "error"
        assert results[1]["error"]["errors"][0]["loc"][-2:] == ["custom_fields", "tier"]

    async def test_a_required_field_is_needed_on_create_and_cannot_be_removed(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        before = await create_contact(client, tenant)
        await define_custom_field(client, tenant, "contacts", "tier", required=True)
        assert_problem(
            await write_contact(client, tenant, {}), 422, loc=["body", "custom_fields", "tier"]
        )
        contact = (await write_contact(client, tenant, {"tier": "gold"})).json()
        url = f"/v1/contacts/{contact['id']}"
        removed = await client.patch(
            url, json={"custom_fields": {"tier": None}}, headers=tenant.headers
        )
        assert_problem(removed, 422, loc=["body", "custom_fields", "tier"])
        # A record from before the field was required can still be changed otherwise.
        other = await client.patch(
            f"/v1/contacts/{before['id']}", json={"last_name": "King"}, headers=tenant.headers
        )
        assert other.status_code == 200, other.text

    async def test_values_stored_under_a_deleted_definition_stay(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        tier = await define_custom_field(client, tenant, "contacts", "tier")
        contact = (await write_contact(client, tenant, {"tier": "gold"})).json()
        deleted = await client.delete(f"/v1/custom-fields/{tier['id']}", headers=tenant.headers)
        assert deleted.status_code == 204
        got = await client.get(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
        assert got.json()["custom_fields"] == {"tier": "gold"}
        # Other writes to the record go through; the key itself is closed.
        url = f"/v1/contacts/{contact['id']}"
        renamed = await client.patch(url, json={"last_name": "King"}, headers=tenant.headers)
        assert renamed.status_code == 200
        closed = await client.patch(
            url, json={"custom_fields": {"tier": "silver"}}, headers=tenant.headers
        )
        assert_problem(closed, 422, loc=["body", "custom_fields", "tier"])
        # Defined again, with a type the stored value does not fit: 409 naming the record.
        body = {"resource": "contacts", "key": "tier", "label": "T", "type": "number"}
        again = await client.post("/v1/custom-fields", json=body, headers=tenant.headers)
        assert assert_problem(again, 409)["record_id"] == contact["id"]


class TestTypeChanges:
    async def test_a_type_the_stored_values_do_not_fit_is_409(
        self, client: AsyncClient, tenant: Tenant
    ) -> None:
        tier = await define_custom_field(client, tenant, "contacts", "tier")
        for value in ("gold", "silver", "gold"):
            assert (await write_contact(client, tenant, {"tier": value})).status_code == 201
        url = f"/v1/custom-fields/{tier['id']}"
        to_number = await client.patch(url, json={"type": "number"}, headers=tenant.headers)
        assert assert_problem(to_number, 409)["record_id"]
        to_select = await client.patch(
            url, json={"type": "select", "options": [{"value": "gold"}]}, headers=tenant.headers
        )
        assert "silver" in assert_problem(to_select, 409)["detail"]
        fits = await client.patch(
            url, json={"type": "select", "options": TIERS}, headers=tenant.headers
        )
        assert fits.status_code == 200, fits.text
        narrowed = await client.patch(
            url, json={"options": [{"value": "silver"}]}, headers=tenant.headers
        )
        assert "gold" in assert_problem(narrowed, 409)["detail"]
        widened = await client.patch(
            url, json={"options": [*TIERS, {"value": "bronze"}]}, headers=tenant.headers
        )
        assert widened.status_code == 200
        assert (await write_contact(client, tenant, {"tier": "bronze"})).status_code == 201


async def test_two_definitions_of_one_key_at_once_one_wins(
    live_client: AsyncClient, live_tenant: Tenant
) -> None:
    body = {"resource": "orders", "key": "channel", "label": "Channel", "type": "text"}
    responses = await asyncio.gather(
        *(
            live_client.post("/v1/custom-fields", json=body, headers=live_tenant.headers)
            for _ in range(4)
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
