"""Business hours: a weekly schedule, holidays and a time zone. Every timer counts in them.

Config (default: always open)::

    business_hours:
      timezone: Europe/Moscow          # default: the top-level timezone
      weekly: {mon: ["09:00-18:00"], tue: ["09:00-13:00", "14:00-18:00"], ...}   # missing day = closed
      holidays: ["2026-12-31", "2027-01-01"]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hub.durations import DAYS, opening_window

HORIZON_DAYS = 366  # a schedule that never opens within a year is a config mistake


@dataclass(frozen=True)
class BusinessHours:
    zone: ZoneInfo
    weekly: dict[int, tuple[tuple[time, time], ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    always_open: bool = True

    def windows(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open intervals of a local calendar day, as aware datetimes."""
        if self.always_open:
            start = datetime.combine(day, time.min, self.zone)
            return [(start, datetime.combine(day + timedelta(days=1), time.min, self.zone))]
        if day in self.holidays:
            return []
        return [(datetime.combine(day, opens, self.zone), datetime.combine(day, closes, self.zone))
                for opens, closes in self.weekly.get(day.weekday(), ())]

    def is_open(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        return any(start <= local < end for start, end in self.windows(local.date()))

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment ``duration`` of open time after ``start``."""
        remaining = duration
        local = start.astimezone(self.zone)
        day = local.date()
        for _ in range(HORIZON_DAYS):
            for opens, closes in self.windows(day):
                begin = max(opens, local)
                if begin >= closes:
                    continue
                if begin + remaining <= closes:
                    return (begin + remaining).astimezone(start.tzinfo)
                remaining -= closes - begin
            day += timedelta(days=1)
        raise ValueError("business hours never open within a year")


def from_config(section: dict | None, default_zone: str) -> BusinessHours:
    if not section:
        return BusinessHours(zone=ZoneInfo(default_zone))
    zone = ZoneInfo(section.get("timezone") or default_zone)
    weekly = {DAYS.index(day): tuple(opening_window(w) for w in windows)
              for day, windows in (section.get("weekly") or {}).items()}
    holidays = frozenset(date.fromisoformat(str(d)) for d in section.get("holidays") or ())
    return BusinessHours(zone=zone, weekly=weekly, holidays=holidays, always_open=False)
