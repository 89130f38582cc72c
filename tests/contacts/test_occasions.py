"""Birthdays and customer anniversaries: announced on the day in the workspace's time zone,
once per contact and year, as events in the feed (and so to webhooks)."""

from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.contacts.occasions import announce_occasions
from tests.builders import Tenant, create_contact
from tests.loyalty.helpers import events_of, place_order


async def _announce(sessionmaker: async_sessionmaker[AsyncSession], at: str) -> None:
    async with sessionmaker() as session:
        await announce_occasions(session, datetime.fromisoformat(at).astimezone(UTC))
        await session.commit()


async def _greeted(client: AsyncClient, tenant: Tenant, type: str) -> list[dict[str, Any]]:
    return [e["data"] for e in await events_of(client, tenant, type)]


async def test_a_birthday_is_announced_once_on_the_day_where_the_workspace_is(
    client: AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    answer = await client.patch(
        "/v1/workspace", json={"time_zone": "Pacific/Auckland"}, headers=tenant.headers
    )
    assert answer.status_code == 200, answer.text
    kiwi = await create_contact(client, tenant, birthday="1990-04-03")
    await create_contact(client, tenant, birthday="1990-04-04")
    utc = await create_contact(client, other_tenant, birthday="1990-04-03")
    # 11:00 UTC on 2 April is midnight into 3 April in Auckland (UTC+13), still 2 April in UTC.
    await _announce(sessionmaker, "2027-04-02T10:59:00+00:00")
    assert await _greeted(client, tenant, "contact.birthday") == []
    await _announce(sessionmaker, "2027-04-02T11:00:00+00:00")
    await _announce(sessionmaker, "2027-04-02T18:00:00+00:00")  # again that day: nothing more
    greeted = await _greeted(client, tenant, "contact.birthday")
    assert [(g["id"], g["occasion"], g["occasion_on"], g["years"]) for g in greeted] == [
        (kiwi["id"], "birthday", "2027-04-03", 37)
    ]
    assert greeted[0]["email"] == kiwi["email"]  # the contact, whole
    assert await _greeted(client, other_tenant, "contact.birthday") == []
    await _announce(sessionmaker, "2027-04-03T10:00:00+00:00")  # their 3 April, in UTC
    assert [g["id"] for g in await _greeted(client, other_tenant, "*.birthday")] == [utc["id"]]
    await _announce(sessionmaker, "2028-04-02T12:00:00+00:00")  # next year: again
    assert len(await _greeted(client, tenant, "contact.birthday")) == 2


async def test_a_leap_day_birthday_is_kept_on_28_february_and_the_erased_are_not_greeted(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    leapling = await create_contact(client, tenant, birthday="2000-02-29")
    erased = await create_contact(client, tenant, birthday="2000-02-28")
    answer = await client.post(f"/v1/contacts/{erased['id']}/erase", headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    await _announce(sessionmaker, "2027-02-28T09:00:00+00:00")
    await _announce(sessionmaker, "2027-03-01T09:00:00+00:00")
    await _announce(sessionmaker, "2028-02-28T09:00:00+00:00")  # a leap year: not yet
    await _announce(sessionmaker, "2028-02-29T09:00:00+00:00")
    greeted = await _greeted(client, tenant, "contact.birthday")
    assert [(g["id"], g["occasion_on"]) for g in greeted] == [
        (leapling["id"], "2027-02-28"),
        (leapling["id"], "2028-02-29"),
    ]


async def test_a_customer_anniversary_is_a_year_after_the_first_paid_order(
    client: AsyncClient, tenant: Tenant, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    customer = await create_contact(client, tenant)
    await place_order(client, tenant, customer["id"], "10", ordered_at="2025-06-10T10:00:00Z")
    await place_order(client, tenant, customer["id"], "10", ordered_at="2026-01-05T10:00:00Z")
    pending = await create_contact(client, tenant)
    await place_order(
        client, tenant, pending["id"], "10", ordered_at="2025-06-10T10:00:00Z", status="pending"
    )
    await _announce(sessionmaker, "2025-06-10T12:00:00+00:00")  # the day itself: no
    await _announce(sessionmaker, "2026-06-10T12:00:00+00:00")
    await _announce(sessionmaker, "2026-06-10T13:00:00+00:00")
    await _announce(sessionmaker, "2027-06-10T12:00:00+00:00")
    greeted = await _greeted(client, tenant, "contact.customer_anniversary")
    assert [(g["id"], g["occasion_on"], g["years"]) for g in greeted] == [
        (customer["id"], "2026-06-10", 1),
        (customer["id"], "2027-06-10", 2),
    ]
