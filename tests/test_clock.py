"""HUB_CLOCK_START starts the hub's clock at a chosen instant, shared by a process tree."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub import clock


@pytest.fixture
def fresh_clock(monkeypatch):
    monkeypatch.delenv(clock.START_VARIABLE, raising=False)
    monkeypatch.delenv(clock.ANCHOR_VARIABLE, raising=False)
    clock.offset.cache_clear()
    yield monkeypatch
    clock.offset.cache_clear()


def test_the_clock_starts_at_the_instant_given_as_of_the_anchor(fresh_clock):
    anchor = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    fresh_clock.setenv(clock.START_VARIABLE, "2026-12-01T02:30:00+03:00")
    fresh_clock.setenv(clock.ANCHOR_VARIABLE, repr(anchor.timestamp()))  # as a parent process left it
    assert clock.offset() == datetime(2026, 11, 30, 23, 30, tzinfo=UTC) - anchor


def test_the_first_reader_records_the_anchor_for_the_processes_it_starts(fresh_clock):
    import os

    fresh_clock.setenv(clock.START_VARIABLE, "2026-12-01T11:00:00+03:00")
    assert clock.ANCHOR_VARIABLE not in os.environ
    clock.now()
    anchor = datetime.fromtimestamp(float(os.environ[clock.ANCHOR_VARIABLE]), UTC)
    assert clock.offset() == datetime(2026, 12, 1, 8, 0, tzinfo=UTC) - anchor


def test_without_the_variable_the_clock_is_the_real_one(fresh_clock):
    assert clock.offset() == timedelta(0)


def test_an_instant_without_its_offset_is_refused(fresh_clock):
    fresh_clock.setenv(clock.START_VARIABLE, "2026-12-01T02:30:00")
    with pytest.raises(ValueError, match="with its offset"):
        clock.offset()
