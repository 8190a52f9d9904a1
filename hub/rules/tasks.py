"""The first task of every lead ("call the client within an hour") and its reminders."""
from __future__ import annotations

from sqlalchemy.orm import Session

from hub.durations import format_duration, parse_duration
from hub.rules import history, people, timers
from hub.rules.business_hours import from_config
from hub.store.models import Lead, Notification, Task, Timer


def business_hours(config):
    return from_config(config.get("business_hours"), config["timezone"])


def open_first_task(out, hub, lead: Lead, sla: dict, hours=None, start=None) -> None:
    """Due ``first_response`` after the lead came in (or after ``start``: a manual assignment)."""
    hours = hours or business_hours(hub.config)
    due = hours.add(start or lead.created_at, sla["first_response"])
    who = " ".join(part for part in (lead.name, lead.phone or lead.email) if part)
    task = out.add(Task, lead_id=lead.id, kind="call", title=f"Call {who}", due_at=due,
                   assignee_id=lead.assignee_id, status="open", created_at=hub.now())
    if sla["remind_every"]:
        timers.schedule(out, f"lead:{lead.id}:call:reminder:1", "reminder", due, lead_id=lead.id,
                        task_id=task, n=1, every=format_duration(sla["remind_every"]))


def remind(session: Session, out, hub, timer: Timer) -> None:
    """Remind the assignee while the task is open; schedule the next reminder."""
    task = session.get(Task, timer.task_id) if timer.task_id else None
    if task is None or task.status != "open":
        return
    n = timer.payload["n"]
    person = people.member(hub.config, task.assignee_id)
    reach = people.contact_channel(hub.config, person) if person else None
    if reach:
        channel, sender, address = reach
        out.add(Notification, lead_id=task.lead_id, rule=f"reminder:task-{task.id}:{n}", channel=channel,
                sender=sender, to=address, subject=f"Reminder: {task.title} (lead {task.lead_id})",
                text=f"Reminder #{n}: {task.title}. Lead {task.lead_id}, due {task.due_at:%Y-%m-%d %H:%M} UTC.",
                next_attempt_at=hub.now())
    history.record(out, task.lead_id, "reminded", hub.now(), task=task.id, to=task.assignee_id, n=n)
    start = max(timer.due_at, hub.now())  # after downtime: one reminder, then the rhythm again
    next_at = business_hours(hub.config).add(start, parse_duration(timer.payload["every"]))
    timers.schedule(out, f"task:{task.id}:reminder:{n + 1}", "reminder", next_at,
                    lead_id=task.lead_id, task_id=task.id, n=n + 1, every=timer.payload["every"])
