"""Tasks, reminders, escalations and business hours, with a fixed clock."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from hub.rules.business_hours import from_config
from hub.store.models import Notification, Timer

from tests.helpers import Clock

MSK = ZoneInfo("Europe/Moscow")
WORKWEEK = {"weekly": {day: ["09:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")}}


def test_friday_evening_lead_is_due_monday_morning():
    hours = from_config(WORKWEEK, "Europe/Moscow")
    friday_evening = datetime(2026, 11, 27, 18, 30, tzinfo=MSK)
    assert hours.add(friday_evening, timedelta(hours=1)) == datetime(2026, 11, 30, 10, 0, tzinfo=MSK)


@pytest.mark.parametrize("start,duration,expected", [
    ((2026, 11, 26, 17, 30), timedelta(hours=1), (2026, 11, 27, 9, 30)),   # spills into the next day
    ((2026, 11, 26, 7, 0), timedelta(minutes=5), (2026, 11, 26, 9, 5)),    # before opening
    ((2026, 11, 26, 12, 0), timedelta(hours=9), (2026, 11, 27, 12, 0)),    # exactly one working day
    ((2026, 12, 30, 17, 0), timedelta(hours=2), (2027, 1, 4, 10, 0)),      # over a holiday and a weekend
])
def test_business_time_arithmetic(start, duration, expected):
    hours = from_config({**WORKWEEK, "holidays": ["2026-12-31", "2027-01-01"]}, "Europe/Moscow")
    assert hours.add(datetime(*start, tzinfo=MSK), duration) == datetime(*expected, tzinfo=MSK)


def test_split_days_and_always_open():
    hours = from_config({"weekly": {"mon": ["09:00-13:00", "14:00-18:00"]}}, "Europe/Moscow")
    monday_noon = datetime(2026, 11, 30, 12, 30, tzinfo=MSK)
    assert hours.add(monday_noon, timedelta(hours=1)) == datetime(2026, 11, 30, 14, 30, tzinfo=MSK)
    assert not hours.is_open(datetime(2026, 11, 30, 13, 30, tzinfo=MSK))
    always = from_config(None, "Europe/Moscow")
    assert always.add(monday_noon, timedelta(hours=30)) == monday_noon + timedelta(hours=30)


def test_bad_business_hours_are_config_problems():
    from hub.config import ConfigError, load_config

    with pytest.raises(ConfigError) as error:
        load_config(document={"business_hours": {"weekly": {"funday": []}}})
    assert error.value.problems == [
        "business_hours.weekly.funday: Must be one of: mon, tue, wed, thu, fri, sat, sun."]
    with pytest.raises(ConfigError) as error:
        load_config(document={"business_hours": {"weekly": {"mon": ["18:00-09:00"]}}})
    assert error.value.problems == [
        "business_hours.weekly.mon.0: '18:00-09:00': window '18:00-09:00' closes before it opens"]


@pytest.fixture
def clock(hub):
    return Clock(hub, datetime(2026, 11, 23, 10, 0, tzinfo=UTC))  # a Monday


def notifications(hub, prefix: str) -> list[Notification]:
    with hub.db.read() as session:
        return list(session.scalars(select(Notification).where(Notification.rule.startswith(prefix))
                                    .order_by(Notification.id)))


def new_lead(client, run_jobs, api) -> dict:
    response = client.post("/hooks/forms/landing", data={"name": "Ivan", "phone": "+79161234567"})
    run_jobs()
    event = api.get(f"/api/events/{response.get_json()['event_id']}").get_json()
    return api.get(f"/api/leads/{event['lead_number']}").get_json()


def test_reminders_every_hour_until_the_task_is_done(clock, client, run_jobs, api, hub):
    lead = new_lead(client, run_jobs, api)
    [task] = lead["tasks"]
    assert (task["kind"], task["title"], task["assignee"]) == ("call", "Call Ivan +79161234567", "anna")
    assert task["due_at"] == "2026-11-23T11:00:00+00:00"
    start = clock.now
    for hour in (1, 2, 3):
        clock.at(start + timedelta(hours=hour))
    reminders = notifications(hub, "reminder:")
    assert [n.to for n in reminders] == ["anna@example.com"] * 3
    assert reminders[0].text.startswith("Reminder #1: Call Ivan +79161234567")
    api.post(f"/api/tasks/{task['id']}/done", json={"outcome": "reached"})
    for hour in (4, 5):
        clock.at(start + timedelta(hours=hour))
    assert len(notifications(hub, "reminder:")) == 3


def test_escalation_to_head_then_director_and_an_action_stops_it(clock, client, run_jobs, api, hub):
    lead = new_lead(client, run_jobs, api)
    start = clock.now
    clock.at(start + timedelta(minutes=59))
    assert notifications(hub, "escalation:") == []
    clock.at(start + timedelta(hours=1))
    [to_head] = notifications(hub, "escalation:")
    assert to_head.to == "vera@example.com" and to_head.subject == f"Assign or handle lead {lead['number']}"
    clock.at(start + timedelta(hours=1, days=1))
    escalations = notifications(hub, "escalation:")
    assert [n.to for n in escalations] == ["vera@example.com", "oleg@example.com"]
    titles = [(t["kind"], t["assignee"]) for t in api.get(f"/api/leads/{lead['number']}").get_json()["tasks"]]
    assert titles == [("call", "anna"), ("escalation", "vera"), ("escalation", "oleg")]


def test_a_status_change_stops_the_chain(clock, client, run_jobs, api, hub):
    lead = new_lead(client, run_jobs, api)
    clock.at(clock.now + timedelta(minutes=30))
    api.patch(f"/api/leads/{lead['number']}", json={"status": "in_progress"})
    clock.at(clock.now + timedelta(days=3))
    assert notifications(hub, "escalation:") == []
    history = [h["action"] for h in api.get(f"/api/leads/{lead['number']}").get_json()["history"]]
    assert history == ["created", "assigned", "status_changed", "reminded"]


def test_stage_limit_escalates_a_lead_stuck_in_progress(clock, client, run_jobs, api, hub):
    hub.config["sla"]["stage_limits"] = {"in_progress": timedelta(days=3)}
    lead = new_lead(client, run_jobs, api)
    api.patch(f"/api/leads/{lead['number']}", json={"status": "in_progress"})
    clock.at(clock.now + timedelta(days=2, hours=23))
    assert notifications(hub, "escalation:") == []
    clock.at(clock.now + timedelta(hours=1))
    [stuck] = notifications(hub, "escalation:")
    assert stuck.to == "vera@example.com"
    assert stuck.subject == f"Lead {lead['number']} is in_progress longer than 3d: move it on"


def test_business_hours_move_the_first_response_due_time(hub, client, run_jobs, api):
    hub.config.data["business_hours"] = {**WORKWEEK, "timezone": "Europe/Moscow", "holidays": []}
    friday_evening = datetime(2026, 11, 27, 18, 30, tzinfo=MSK)
    hub.clock = lambda: friday_evening
    lead = new_lead(client, run_jobs, api)
    assert lead["tasks"][0]["due_at"] == "2026-11-30T07:00:00+00:00"  # Monday 10:00 in Moscow


def test_a_timer_due_while_the_scheduler_was_down_fires_once_when_it_returns(clock, client, run_jobs, api, hub):
    new_lead(client, run_jobs, api)
    clock.at(clock.now + timedelta(hours=10))  # ten reminder times passed while it was down
    assert len(notifications(hub, "reminder:")) == 1
    with hub.db.read() as session:
        pending = session.scalar(select(func.count()).select_from(Timer).where(Timer.status == "pending",
                                                                              Timer.kind == "reminder"))
    assert pending == 1


def test_a_broken_timer_is_isolated(clock, hub):
    from hub.rules import timers
    from hub.store.writer import RowWriter

    with hub.db.write() as session:
        out = RowWriter(session)
        timers.schedule(out, "broken", "no-such-kind", clock.now)
        timers.schedule(out, "fine", "escalation", clock.now, lead_id=None)
        out.flush()
    clock.at(clock.now)
    with hub.db.read() as session:
        states = {t.key: (t.status, t.error) for t in session.scalars(select(Timer))}
    assert states["fine"] == ("fired", None)
    assert states["broken"][0] == "failed" and "KeyError" in states["broken"][1]
