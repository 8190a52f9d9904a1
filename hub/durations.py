"""Durations and daily windows as the config writes them: ``"90s"``, ``"5m"``, ``"1h"``, ``"2d"``
(and ``"500ms"``); ``"09:00-18:00"``."""
from __future__ import annotations

import functools
import re
from datetime import time, timedelta

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|[smhdw])\s*$")


@functools.lru_cache(maxsize=256)
def parse_duration(text: str) -> timedelta:
    match = DURATION_RE.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (write it as 90s, 5m, 1h or 2d)")
    amount, unit = match.groups()
    return timedelta(**{UNITS[unit]: float(amount)})



def format_duration(value: timedelta) -> str:
    """The config's own spelling of a duration, for rows and messages: ``"3d"``, ``"90s"``."""
    ms = round(value.total_seconds() * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def clock_window(text: str) -> tuple[time, time]:
    """``"21:00-09:00"`` as its two ends; the window may run past midnight."""
    start, _, end = text.partition("-")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


def opening_window(text: str) -> tuple[time, time]:
    """Opening hours within one day: ``"09:00-18:00"``; ``"-00:00"`` closes at midnight."""
    start, end = clock_window(text)
    if end <= start and end != time(0, 0):
        raise ValueError(f"window {text!r} closes before it opens")
    return start, (end if end != time(0, 0) else time.max)
