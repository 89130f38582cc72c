"""The SLA clock on hand-computed cases: weekends, lunch breaks, time zones, a daylight-saving
switch, targets longer than a week; and the clock's two directions agreeing on random cases."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_api.tickets.sla import (
    BusinessHours,
    TargetStatus,
    add_business_time,
    business_seconds_between,
    target_status,
)

NINE_TO_FIVE = (9 * 60, 17 * 60)
WEEKDAYS = {day: [NINE_TO_FIVE] for day in range(5)}
BERLIN = BusinessHours(ZoneInfo("Europe/Berlin"), WEEKDAYS)
NEW_YORK = BusinessHours(ZoneInfo("America/New_York"), WEEKDAYS)
WITH_LUNCH = BusinessHours(
    ZoneInfo("Europe/Berlin"), {day: [(9 * 60, 12 * 60), (13 * 60, 17 * 60)] for day in range(5)}
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("hours", "start", "minutes", "due"),
    [
        # Calendar time: 8 hours from Friday 16:00 is Saturday 00:00.
        (None, utc(2026, 11, 27, 16), 8 * 60, utc(2026, 11, 28, 0)),
        # Friday 16:00 in Berlin (15:00 UTC, winter time UTC+1): one hour on Friday, three
        # on Monday from 09:00, so Monday 12:00 Berlin = 11:00 UTC.
        (BERLIN, utc(2026, 11, 27, 15), 4 * 60, utc(2026, 11, 30, 11)),
        # Opened on Saturday: the clock starts on Monday at 09:00 Berlin (08:00 UTC).
        (BERLIN, utc(2026, 11, 28, 10), 2 * 60, utc(2026, 11, 30, 10)),
        # Opened before the office opens: from 09:00 the same day.
        (BERLIN, utc(2026, 12, 1, 5), 30, utc(2026, 12, 1, 8, 30)),
        # Exactly the rest of Friday: due at closing time, not Monday morning.
        (BERLIN, utc(2026, 11, 27, 15), 60, utc(2026, 11, 27, 16)),
        # New York leaves daylight saving on Sunday 1 November 2026: Friday 16:00 EDT is
        # 20:00 UTC; one hour that day, then two from Monday 09:00 EST (14:00 UTC).
        (NEW_YORK, utc(2026, 10, 30, 20), 3 * 60, utc(2026, 11, 2, 16)),
        # A lunch break is not business time: 11:30 + 1 h is 13:30 (Berlin).
        (WITH_LUNCH, utc(2026, 12, 1, 10, 30), 60, utc(2026, 12, 1, 12, 30)),
        # 40 hours from Monday 09:00 fill the week: due Friday 17:00 (16:00 UTC).
        (BERLIN, utc(2026, 11, 30, 8), 40 * 60, utc(2026, 12, 4, 16)),
        # 100 hours: two whole weeks (80 h), then Mon 8 + Tue 8 + Wed 4: Wednesday 13:00
        # Berlin of the third week.
        (BERLIN, utc(2026, 11, 30, 8), 100 * 60, utc(2026, 12, 16, 12)),
        # Across Europe's spring switch (29 March 2026): Friday 27 March 16:00 CET (15:00 UTC)
        # plus 2 hours is Monday 30 March 10:00 CEST, 08:00 UTC.
        (BERLIN, utc(2026, 3, 27, 15), 2 * 60, utc(2026, 3, 30, 8)),
    ],
)
def test_due_dates(
    hours: BusinessHours | None, start: datetime, minutes: int, due: datetime
) -> None:
    assert add_business_time(start, minutes, hours) == due
    assert business_seconds_between(start, due, hours) == minutes * 60


@pytest.mark.parametrize(
    ("hours", "start", "end", "seconds"),
    [
        # Friday 16:00 to Monday 10:00 Berlin: an hour each side of the weekend.
        (BERLIN, utc(2026, 11, 27, 15), utc(2026, 11, 30, 9), 2 * 3600),
        # Reversed: negative (how late a breached target is).
        (BERLIN, utc(2026, 11, 30, 9), utc(2026, 11, 27, 15), -2 * 3600),
        # A whole weekend holds no business time.
        (BERLIN, utc(2026, 11, 28, 0), utc(2026, 11, 29, 23), 0),
        # Ten weeks, Monday 09:00 to Monday 09:00 (across the autumn switch, which falls outside
        # business hours): 400 hours.
        (BERLIN, utc(2026, 9, 7, 7), utc(2026, 11, 16, 8), 400 * 3600),
        (None, utc(2026, 1, 1), utc(2026, 1, 2), 86400),
    ],
)
def test_business_time_between(
    hours: BusinessHours | None, start: datetime, end: datetime, seconds: int
) -> None:
    assert business_seconds_between(start, end, hours) == seconds


def test_a_schedule_without_hours_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one day"):
        add_business_time(utc(2026, 1, 1), 60, BusinessHours(ZoneInfo("UTC"), {}))


@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)),
    minutes=st.integers(min_value=1, max_value=60 * 24 * 120),
    schedule=st.sampled_from([BERLIN, NEW_YORK, WITH_LUNCH]),
)
def test_adding_then_measuring_gives_the_target_back(
    start: datetime, minutes: int, schedule: BusinessHours
) -> None:
    """Exact wherever no business window holds a daylight-saving switch (none of these do)."""
    start = start.replace(tzinfo=UTC)
    due = add_business_time(start, minutes, schedule)
    assert due > start
    assert business_seconds_between(start, due, schedule) == minutes * 60
    # And no earlier moment would do: a minute before the due time is short of the target.
    assert business_seconds_between(start, due - timedelta(minutes=1), schedule) < minutes * 60


def test_target_status() -> None:
    due = utc(2026, 12, 1, 12)
    assert target_status(due, None, due) is TargetStatus.running
    assert target_status(due, None, due + timedelta(seconds=1)) is TargetStatus.breached
    assert target_status(due, due, due + timedelta(days=9)) is TargetStatus.met
    late = due + timedelta(minutes=1)
    assert target_status(due, late, late) is TargetStatus.breached
