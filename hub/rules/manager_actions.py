"""What managers do through the API or the console, and how the timed rules react: any action
stops the "untouched lead" escalation; a status change starts that status's stage limit; a
closed lead cancels what is scheduled; a callback task closed with an outcome stops the ladder,
and one closed with ``no answer`` moves it to its next rung. ``actor`` names who acted in the
lead's history ("api", or the team member signed in to the console)."""
from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from hub.store.models import Assignment, Lead, Task
from hub.pipeline.sync import queue_update
from hub.store.writer import RowWriter
from hub.rules import assignment, callbacks, history, sla, timers

CLOSED = ("converted", "junk", "archived")


def touch(lead: Lead, now) -> None:
    lead.handled_at = lead.handled_at or now
    lead.updated_at = now


NO_ANSWER = "no answer"


def update_lead(session: Session, hub, lead: Lead, status: str | None, assignee: str | None,
                actor: str = "api") -> None:
    now, out = hub.now(), RowWriter(session)
    touch(lead, now)
    queue_update(session, [lead.id], now)
    if status and status != lead.status:
        history.record(out, lead.id, "status_changed", now, actor=actor, **{"from": lead.status, "to": status})
        lead.status, lead.status_changed_at = status, now
        if status in CLOSED:
            timers.cancel_for_lead(session, lead.id)
        else:
            sla.start_stage_limit(out, hub, lead, sla.sla_of(hub.config, lead))
    if assignee and assignee != lead.assignee_id:
        reassign(session, out, hub, lead, assignee, actor)
    out.flush()


def reassign(session: Session, out, hub, lead: Lead, assignee: str, actor: str = "api") -> None:
    """A lead waiting for a manual assignment also gets its manager's call task here."""
    now = hub.now()
    previous = lead.assignee_id
    lead.assignee_id = assignee
    lead.assignment_reason = f"reassigned to {assignee} via the API" if actor == "api" else f"reassigned to {assignee} by {actor}"
    out.add(Assignment, lead_id=lead.id, member_id=assignee, reason=lead.assignment_reason, at=now)
    session.execute(update(Task).where(Task.lead_id == lead.id, Task.status == "open",
                                       Task.kind.in_(("call", "callback"))).values(assignee_id=assignee))
    history.record(out, lead.id, "reassigned", now, actor=actor, **{"from": previous, "to": assignee})
    if previous is None:
        assignment.assigned(session, out, hub, lead, now)


def close_task(session: Session, hub, task: Task, outcome: str | None, actor: str = "api") -> None:
    if task.status != "open":
        return
    now, out = hub.now(), RowWriter(session)
    task.status, task.outcome, task.closed_at = "done", outcome, now
    lead = session.get(Lead, task.lead_id)
    touch(lead, now)
    history.record(out, lead.id, "task_done", now, actor=actor, task=task.id, outcome=outcome)
    if task.kind in ("call", "callback") and outcome == NO_ANSWER:
        callbacks.not_reached(session, out, hub, task)
    elif task.kind == "callback":
        callbacks.stop_ladder(session, out, hub, lead.id, outcome or "closed by a manager")
    out.flush()


def add_note(session: Session, hub, lead: Lead, text: str, actor: str) -> None:
    """A note counts as handling the lead, like any other action."""
    now, out = hub.now(), RowWriter(session)
    touch(lead, now)
    history.record(out, lead.id, "note", now, actor=actor, text=text)
    out.flush()
