"""Report snapshots: the database records every change the reports read, a changed day is read
from the tables until it is rebuilt, a change made while a snapshot is built is never lost, and
the scheduler rebuilds changed days at most every ``REFRESH_EVERY``."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from hub.pipeline.route import sync_team
from hub.reports import snapshots
from hub.runtime import cli, scheduler
from hub.store.models import Lead, LeadHistory, ReportChange, StageVisit, Task

from tests.helpers import numbering_after_seeded_leads, snapshot_every_day

OCTOBER, NOVEMBER = datetime(2026, 10, 20, 9, 0, tzinfo=UTC), datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
PERIOD = "from=2026-10-01&to=2026-11-30"


@pytest.fixture
def stored(hub):
    hub.clock = lambda: datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with hub.db.write() as session:
        sync_team(session, hub.config["team"])
        for number, created in ((1, OCTOBER), (2, OCTOBER), (3, NOVEMBER)):
            session.add(Lead(id=number, assignee_id="anna", channel="form", source={"utm_source": "yandex"},
                             last_source={}, status="new", created_at=created))
        numbering_after_seeded_leads(session)
    snapshot_every_day(hub)
    return hub


def changed_days(hub) -> list[str]:
    with hub.db.read() as session:
        return snapshots.due_days(session)


def converted(api) -> int:
    response = api.get(f"/api/reports/channels?by=utm_source&{PERIOD}")
    assert response.status_code == 200, response.json
    [row] = response.json["rows"]
    return row["converted"]


@pytest.mark.parametrize("change", [
    lambda session: session.execute(update(Lead).where(Lead.id == 1).values(status="converted")),
    lambda session: session.execute(update(Lead).where(Lead.id == 1).values(score_class="A")),
    lambda session: session.add(LeadHistory(lead_id=1, actor="hub", action="escalated", at=OCTOBER)),
    lambda session: session.add(Task(lead_id=1, kind="callback", title="call back", assignee_id="anna",
                                     status="done")),
    lambda session: session.add(StageVisit(lead_id=1, pipeline="sales", stage="offer", entered_at=OCTOBER)),
], ids=["status", "score", "escalation", "callback", "stay"])
def test_each_change_the_reports_read_marks_its_day(stored, change):
    with stored.db.write() as session:
        change(session)
    assert changed_days(stored) == ["2026-10-20"]


def test_a_change_the_reports_do_not_read_marks_nothing(stored):
    with stored.db.write() as session:
        session.execute(update(Lead).where(Lead.id == 1).values(name="Anna", phone="+79161234567"))
        session.add(LeadHistory(lead_id=1, actor="anna", action="note", at=OCTOBER))
        session.add(Task(lead_id=1, kind="call", title="call", assignee_id="anna", status="done"))
    assert changed_days(stored) == []


def test_a_changed_day_is_read_from_the_tables_until_rebuilt(api, stored):
    assert converted(api) == 0
    with stored.db.write() as session:
        session.execute(update(Lead).where(Lead.id == 1).values(status="converted"))
    with stored.db.read() as session:
        assert snapshots.current(session, ["2026-10-20", "2026-11-10"]) == {"2026-11-10"}
    assert converted(api) == 1  # at once, before any rebuild
    assert snapshots.refresh(stored) == ["2026-10-20"]
    with stored.db.read() as session:
        assert snapshots.current(session, ["2026-10-20", "2026-11-10"]) == {"2026-10-20", "2026-11-10"}
    assert converted(api) == 1


def test_a_change_made_while_a_snapshot_is_built_is_never_lost(api, stored, monkeypatch):
    with stored.db.write() as session:
        session.execute(update(Lead).where(Lead.id == 1).values(status="junk"))
    gather = snapshots.gather

    def gather_then_a_manager_converts(session, day):
        found = gather(session, day)
        with stored.db.write() as other:  # another process, committing after the builder's reads
            other.execute(update(Lead).where(Lead.id == 2).values(status="converted"))
        return found

    with monkeypatch.context() as patch:
        patch.setattr(snapshots, "gather", gather_then_a_manager_converts)
        assert snapshots.refresh(stored) == ["2026-10-20"]
    assert changed_days(stored) == ["2026-10-20"]  # the conversion is not in the snapshot, so it stays changed
    assert converted(api) == 1
    assert snapshots.refresh(stored) == ["2026-10-20"] and changed_days(stored) == []
    assert converted(api) == 1


def test_the_scheduler_rebuilds_changed_days_at_most_every_refresh_period(stored, run_jobs):
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    stored.clock = lambda: now
    assert scheduler.tick(stored)["report_snapshots"] is False  # nothing changed
    with stored.db.write() as session:
        session.execute(update(Lead).where(Lead.id == 3).values(status="converted"))
    assert scheduler.tick(stored)["report_snapshots"] is False  # built just now, by the fixture
    now += snapshots.REFRESH_EVERY
    assert scheduler.tick(stored)["report_snapshots"] is True
    run_jobs()
    assert changed_days(stored) == []


def test_snapshots_of_another_format_are_rebuilt(stored, monkeypatch):
    monkeypatch.setattr(snapshots, "FORMAT", snapshots.FORMAT + 1)
    assert changed_days(stored) == ["2026-10-20", "2026-11-10"]
    with stored.db.read() as session:
        assert snapshots.current(session, ["2026-10-20", "2026-11-10"]) == set()
    assert snapshots.refresh(stored) == ["2026-10-20", "2026-11-10"]


def test_a_day_whose_leads_are_gone_keeps_no_snapshot(api, stored):
    with stored.db.write() as session:
        session.execute(Lead.__table__.delete().where(Lead.id == 3))
    assert snapshots.refresh(stored) == ["2026-11-10"]
    with stored.db.read() as session:
        assert snapshots.current(session, ["2026-11-10"]) == set()
        assert session.scalar(select(func.count()).select_from(ReportChange)) == 0
    [row] = api.get(f"/api/reports/channels?{PERIOD}").json["rows"]
    assert row["leads"] == 2


def test_hub_reports_snapshot(stored):
    with stored.db.write() as session:
        session.execute(update(Lead).where(Lead.id == 3).values(status="converted"))
    result = CliRunner().invoke(cli.main, ["reports", "snapshot"])
    assert result.exit_code == 0, result.output
    assert "report snapshots built: 1 day, 2026-11-10 to 2026-11-10" in result.output
    result = CliRunner().invoke(cli.main, ["reports", "snapshot"])
    assert "every report snapshot is current" in result.output


def test_days_between_covers_the_period_in_utc():
    moscow = timedelta(hours=3)
    start = datetime(2026, 1, 1, tzinfo=UTC) - moscow  # 1 January in Moscow starts on 31 December in UTC
    assert snapshots.days_between(start, datetime(2026, 1, 3, tzinfo=UTC) - moscow) == \
        ["2025-12-31", "2026-01-01", "2026-01-02"]
    assert snapshots.days_between(datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)) == \
        ["2026-12-31"]
