"""The missed-call callback ladder: "call back" tasks at 5 min, 30 min, 3 h and 1 day after
the missed call (configurable), then the lead is archived. The ladder stops when the client
is reached (an answered call either way) or a manager closes the task with an outcome."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.rules import history, timers
from hub.rules.tasks import business_hours
from hub.store.models import Lead, Task, Timer

OPEN = "open"


def start_ladder(session: Session, out, hub, lead: Lead, missed_at: datetime, call_key: str) -> None:
    out.flush()  # the open-ladder check below must see callback tasks made earlier in this batch
    if session.scalar(select(Task.id).where(Task.lead_id == lead.id, Task.kind == "callback",
                                            Task.status == OPEN)):
        return  # a ladder is already running for this client
    open_step(out, hub, lead, 1, missed_at, call_key)
    history.record(out, lead.id, "callback_ladder_started", hub.now(), call=call_key)


def open_step(out, hub, lead: Lead, step: int, missed_at: datetime, call_key: str) -> None:
    offset = hub.config["callbacks"]["ladder"][step - 1]
    due = business_hours(hub.config).add(missed_at, offset)
    task = out.add(Task, lead_id=lead.id, kind="callback", title=f"Call back {lead.phone}", due_at=due,
                   assignee_id=lead.assignee_id, step=step, status=OPEN, created_at=hub.now())
    timers.schedule(out, f"callback:{call_key}:{step}", "callback", due, lead_id=lead.id,
                    task_id=task, step=step, missed_at=missed_at.isoformat(), call=call_key)


def advance(session: Session, out, hub, timer: Timer) -> None:
    """The step's deadline passed with the client not reached: next rung, or archive."""
    task = session.get(Task, timer.task_id)
    if task is None or task.status != OPEN:
        return
    task.status, task.closed_at = "expired", hub.now()
    task.outcome = task.outcome or "not reached before the next step was due"
    next_step(out, hub, session.get(Lead, timer.lead_id), timer.payload)


def next_step(out, hub, lead: Lead, payload: dict) -> None:
    """The rung after ``payload["step"]`` (a callback timer's payload), or the end of the ladder."""
    step, ladder = payload["step"], hub.config["callbacks"]["ladder"]
    if step < len(ladder):
        open_step(out, hub, lead, step + 1, datetime.fromisoformat(payload["missed_at"]), payload["call"])
    elif hub.config["callbacks"]["then"] == "archive" and lead.status in ("new", "in_progress"):
        lead.status, lead.status_changed_at = "archived", hub.now()
        history.record(out, lead.id, "archived", hub.now(), reason="callback ladder exhausted")


def not_reached(session: Session, out, hub, task: Task) -> None:
    """A manager called and nobody answered: the ladder moves on to its next rung now (or,
    for a first call, starts), instead of waiting for the step's deadline."""
    lead = session.get(Lead, task.lead_id)
    timer = session.scalar(select(Timer).where(Timer.task_id == task.id, Timer.kind == "callback",
                                               Timer.status == "pending"))
    if task.kind != "callback" or timer is None:
        start_ladder(session, out, hub, lead, hub.now(), f"task:{task.id}")
        return
    timer.status = "cancelled"
    next_step(out, hub, lead, timer.payload)


def stop_ladder(session: Session, out, hub, lead_id: int, outcome: str) -> bool:
    """The client was reached: close open callback tasks, cancel what is scheduled."""
    out.flush()  # callback tasks made earlier in this batch are closed too
    closed = session.execute(
        update(Task).where(Task.lead_id == lead_id, Task.kind == "callback", Task.status == OPEN)
        .values(status="done", outcome=outcome, closed_at=hub.now())).rowcount
    timers.cancel_for_lead(session, lead_id, ("callback",))
    if closed:
        history.record(out, lead_id, "callback_ladder_stopped", hub.now(), outcome=outcome)
    return bool(closed)
