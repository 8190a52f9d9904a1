"""Quiet hours in the client's own time zone: an SMS that would arrive at night waits for the
morning. The zone comes from the phone number (``phonenumbers``' time zone data); a number
that maps to several zones (Russian mobiles do) falls back to the team's zone."""
from __future__ import annotations

import functools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from phonenumbers import timezone as number_zones

from hub.durations import clock_window
from hub.mapping import stored_phone


@functools.lru_cache(maxsize=4096)
def zone_name(phone: str | None, team_zone: str) -> str:
    number = stored_phone(phone)
    if number is None:
        return team_zone
    zones = number_zones.time_zones_for_number(number)
    if len(zones) != 1 or zones[0] == number_zones.UNKNOWN_TIMEZONE:
        return team_zone
    try:
        ZoneInfo(zones[0])
    except ZoneInfoNotFoundError:
        return team_zone
    return zones[0]


def client_zone(phone: str | None, team_zone: str) -> ZoneInfo:
    return ZoneInfo(zone_name(phone, team_zone))


def release_time(moment: datetime, zone: ZoneInfo, window: str | None) -> datetime:
    """``moment`` if it is not quiet there, else the end of the quiet hours."""
    if not window:
        return moment
    start, end = clock_window(window)
    local = moment.astimezone(zone)
    now = local.time()
    quiet = (start <= now or now < end) if start > end else (start <= now < end)
    if not quiet:
        return moment
    day = local.date() if now < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, zone).astimezone(moment.tzinfo)


def quiet_hours_reason(window: str | None, zone: str) -> str | None:
    return f"quiet hours {window} in the client's time zone ({zone})" if window else None
