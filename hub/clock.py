"""The hub's one clock. Every process reads the time through ``now()``.

``HUB_CLOCK_START`` (an ISO 8601 instant with its offset, e.g. ``2026-12-01T02:30:00+03:00``)
starts the clock at that instant; it then runs at real speed. The first process to read it
records the real moment it did in ``HUB_CLOCK_ANCHOR``, which the processes it starts inherit,
so a whole ``hub run`` tree shares one shifted clock. Tests and CI use it to run the suite at
night and by day; a production hub leaves it unset.
"""
from __future__ import annotations

import functools
import os
import time
from datetime import UTC, datetime, timedelta

START_VARIABLE = "HUB_CLOCK_START"
ANCHOR_VARIABLE = "HUB_CLOCK_ANCHOR"


def parse_start(text: str) -> datetime:
    try:
        start = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{START_VARIABLE}: not an ISO 8601 instant: {text!r}") from exc
    if start.tzinfo is None:
        raise ValueError(f"{START_VARIABLE}: give the instant with its offset, e.g. +03:00")
    return start


@functools.cache
def offset() -> timedelta:
    text = os.environ.get(START_VARIABLE)
    if not text:
        return timedelta(0)
    anchor = float(os.environ.setdefault(ANCHOR_VARIABLE, repr(time.time())))
    return parse_start(text) - datetime.fromtimestamp(anchor, UTC)


def now() -> datetime:
    return datetime.now(UTC) + offset()
