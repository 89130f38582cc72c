"""SLA clocks: a target of N minutes counted either in calendar time or in the business hours
of a weekly schedule in a time zone. Pure functions of their arguments, no I/O.

Business windows are local wall-clock times (09:00-17:00 Europe/Berlin), turned into UTC day
by day, so a daylight-saving switch moves them as it moves the office. Spans of many weeks are
crossed a whole week at a time, each week holding the schedule's weekly total: exact unless a
business window itself contains a daylight-saving switch (a 24-hour schedule, say)."""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

# Minutes after local midnight: (540, 1020) is 09:00-17:00; an end of 1440 is midnight.
Window = tuple[int, int]
WEEK = timedelta(days=7)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def minute_of_day(clock: str) -> int:
    """`09:30` → 570; `24:00` → 1440."""
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True)
class BusinessHours:
    timezone: ZoneInfo
    # Monday = 0 … Sunday = 6; each day's windows sorted and not overlapping.
    weekly: Mapping[int, Sequence[Window]]

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> "BusinessHours":
        """From the API's form: {"timezone": "Europe/Berlin", "monday": [{"start": "09:00",
        "end": "17:00"}], …}."""
        return cls(
            ZoneInfo(stored["timezone"]),
            {
                number: [(minute_of_day(w["start"]), minute_of_day(w["end"])) for w in stored[name]]
                for number, name in enumerate(WEEKDAYS)
                if stored.get(name)
            },
        )

    @property
    def weekly_seconds(self) -> int:
        return sum((end - start) * 60 for day in self.weekly.values() for start, end in day)

    def _at(self, day: date, minute: int) -> datetime:
        local = datetime.combine(day, time(0), tzinfo=self.timezone) + timedelta(minutes=minute)
        return local.astimezone(UTC)

    def windows_from(self, moment: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Business windows in UTC, in order, from the local day of `moment` on, unbounded."""
        day = moment.astimezone(self.timezone).date()
        while True:
            for start, end in self.weekly.get(day.weekday(), ()):
                yield self._at(day, start), self._at(day, end)
            day += timedelta(days=1)

    def shift_weeks(self, moment: datetime, weeks: int) -> datetime:
        """The same local wall-clock time `weeks` weeks later."""
        local = moment.astimezone(self.timezone).replace(tzinfo=None) + weeks * WEEK
        return local.replace(tzinfo=self.timezone).astimezone(UTC)


def add_business_time(start: datetime, minutes: int, hours: BusinessHours | None) -> datetime:
    """The moment `minutes` of (business) time after `start`."""
    if hours is None:
        return start + timedelta(minutes=minutes)
    weekly = hours.weekly_seconds
    if weekly <= 0:
        raise ValueError("a schedule needs business hours on at least one day")
    remaining = timedelta(minutes=minutes)
    # Whole weeks first, keeping some time back so the walk below ends inside a window.
    weeks = max(0, (minutes * 60 - 1) // weekly)
    cursor = hours.shift_weeks(start, weeks)
    remaining -= timedelta(seconds=weeks * weekly)
    if remaining <= timedelta(0):
        return cursor
    for opens, closes in hours.windows_from(cursor):
        if closes <= cursor:
            continue
        opens = max(opens, cursor)
        if remaining <= closes - opens:
            return opens + remaining
        remaining -= closes - opens
    raise AssertionError("unreachable: windows_from never ends")


def business_seconds_between(start: datetime, end: datetime, hours: BusinessHours | None) -> int:
    """(Business) seconds from `start` to `end`; negative when `end` is earlier."""
    if end < start:
        return -business_seconds_between(end, start, hours)
    if hours is None:
        return int((end - start).total_seconds())
    weeks = max(0, (end - start).days // 7 - 1)
    cursor = hours.shift_weeks(start, weeks)
    total = timedelta(seconds=weeks * hours.weekly_seconds)
    for opens, closes in hours.windows_from(cursor):
        if opens >= end:
            break
        overlap = min(closes, end) - max(opens, cursor)
        if overlap > timedelta(0):
            total += overlap
    return int(total.total_seconds())


class TargetStatus(StrEnum):
    """`running`: not reached yet, still in time; `met`: reached in time; `breached`: late, or
    not reached and past due."""

    running = "running"
    met = "met"
    breached = "breached"


def target_status(due_at: datetime, reached_at: datetime | None, now: datetime) -> TargetStatus:
    if reached_at is not None:
        return TargetStatus.met if reached_at <= due_at else TargetStatus.breached
    return TargetStatus.running if now <= due_at else TargetStatus.breached
