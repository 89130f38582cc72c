"""Date triggers: on a contact's birthday and on the anniversary of their first paid order, the
worker announces `contact.birthday` or `contact.customer_anniversary`, on the day in the
workspace's time zone, once per contact and year (contact_occasions holds which were), so a
messaging tool subscribed to them can greet. Born on 29 February: 28 February in other years."""

import calendar
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.contacts.repository import ContactRepository, OccasionRepository
from crm_api.contacts.schemas import ContactOccasionRead, ContactRead, Occasion
from crm_api.webhooks.events import emit
from crm_api.workspaces.models import Workspace


def month_days(day: date) -> list[int]:
    """The birthdays that fall on this day, as month * 100 + day."""
    days = [day.month * 100 + day.day]
    if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
        days.append(229)
    return days


async def announce_occasions(session: AsyncSession, now: datetime, limit: int = 500) -> int:
    """Announce up to `limit` of today's birthdays and anniversaries in every workspace; how
    many were announced."""
    occasions = OccasionRepository(session)
    contacts = ContactRepository(session)
    workspaces = (await session.execute(select(Workspace.id, Workspace.time_zone))).all()
    announced = 0
    for workspace_id, time_zone in workspaces:
        today = now.astimezone(ZoneInfo(time_zone)).date()
        for occasion in Occasion:
            ids = await occasions.claim(
                occasion, workspace_id, time_zone, today.year, month_days(today), limit - announced
            )
            if not ids:
                continue
            found = await contacts.live_by_ids(workspace_id, ids)
            firsts = {}
            if occasion is Occasion.customer_anniversary:
                firsts = await occasions.first_orders(workspace_id, ids)
            for contact_id in ids:
                contact = found[contact_id]
                if occasion is Occasion.birthday:
                    assert contact.birthday is not None
                    years = today.year - contact.birthday.year
                else:
                    years = today.year - firsts[contact_id].astimezone(ZoneInfo(time_zone)).year
                data = ContactOccasionRead(
                    **ContactRead.model_validate(contact).model_dump(),
                    occasion=occasion,
                    occasion_on=today,
                    years=years,
                )
                emit(session, workspace_id, f"contact.{occasion}", data)
            announced += len(ids)
            if announced >= limit:
                return announced
    return announced
