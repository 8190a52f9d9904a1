"""What managers do (through the API, the console, or in a CRM the hub reads back), and how the
timed rules react: any action stops the "untouched lead" escalation; a status change starts
that status's stage limit; a closed lead cancels what is scheduled; a task closed with an
outcome stops the reminders, and a callback ladder, while ``no answer`` moves the ladder to its
next rung; the first assignment of a lead waiting for one opens its manager's call task; a move
to a pipeline stage (or a named outcome) takes the lead in_progress, to that stage, or closes it
as won or lost (``hub.rules.stages``). Every
source goes through these functions, so all drive the rules the same way; only the actor
("api", a team member signed in to the console, a CRM user) and what the source says differ."""
from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.pipeline.sync import queue_update
from hub.rules import assignment, callbacks, history, sla, stages, timers
from hub.store.models import Assignment, Lead, Task
from hub.store.writer import RowWriter

CLOSED = ("converted", "junk", "archived")
NO_ANSWER = "no answer"


@dataclass(frozen=True)
class Action:
    """``outcome`` closes the open call task (and stops a callback ladder) with that outcome;
    ``origin`` names the CRM target the action was made in, which is not pushed to again;
    ``reason`` says why, for the history (a lead deleted in a CRM); ``stage`` moves the lead to
    that stage of its pipeline; ``stage_outcome`` is the named outcome that ends its stay."""

    actor: str = "api"
    status: str | None = None
    assignee: str | None = None
    outcome: str | None = None
    origin: str | None = None
    reason: str | None = None
    stage: str | None = None
    stage_outcome: str | None = None


def touch(lead: Lead, now) -> bool:
    """Marks the lead handled; whether this was its first manager action."""
    first = lead.handled_at is None
    lead.handled_at = lead.handled_at or now
    lead.updated_at = now
    return first


def act(session: Session, hub, lead: Lead, action: Action) -> None:
    now, out = hub.now(), RowWriter(session)
    first = touch(lead, now)
    changed = False
    if action.status and action.status != lead.status:
        change_status(session, out, hub, lead, action)
        changed = True
    if action.stage and action.stage != lead.stage:
        move_stage(session, out, hub, lead, action)
        changed = True
    if action.assignee and action.assignee != lead.assignee_id:
        reassign(session, out, hub, lead, action.assignee, action.actor)
        changed = True
    closed = close_open_tasks(session, out, hub, lead, action) if action.outcome else False
    if changed:
        queue_update(session, [lead.id], now, skip_target=action.origin)
    elif first and not closed:
        history.record(out, lead.id, "handled", now, actor=action.actor)
    out.flush()


def update_lead(session: Session, hub, lead: Lead, status: str | None, assignee: str | None,
                actor: str = "api") -> None:
    """The API's ``PATCH /api/leads/<number>`` and the console's lead actions."""
    act(session, hub, lead, Action(actor=actor, status=status, assignee=assignee))


def change_status(session: Session, out, hub, lead: Lead, action: Action) -> None:
    """``in_progress`` also puts the lead at a stage of its pipeline (the one it was last at, a
    reopened lead resuming there; the first otherwise), unless the action names the stage; any
    other status ends its stay at a stage."""
    now = hub.now()
    details = {"from": lead.status, "to": action.status}
    history.record(out, lead.id, "status_changed", now, actor=action.actor,
                   **details, **({"reason": action.reason} if action.reason else {}))
    lead.status, lead.status_changed_at = action.status, now
    if action.status in CLOSED:
        timers.cancel_for_lead(session, lead.id)
    else:
        sla.start_stage_limit(out, hub, lead, sla.sla_of(hub.config, lead))
    if not action.stage:
        stages.follow_status(session, out, hub, lead, action.actor, action.stage_outcome)


def move_stage(session: Session, out, hub, lead: Lead, action: Action) -> None:
    """A stage refines ``in_progress``: a lead in any other status is taken in_progress first."""
    if lead.status != "in_progress":
        change_status(session, out, hub, lead, replace(action, status="in_progress"))
    if lead.stage:
        stages.leave(session, out, hub, lead, action.stage_outcome or "moved", action.actor)
    stages.enter(session, out, hub, lead, action.stage, action.actor)


def move_lead(session: Session, hub, lead: Lead, stage: str | None = None, outcome: str | None = None,
              actor: str = "api") -> None:
    """The API's and the console's stage moves: to ``stage`` (a stage name or ``next``), or by
    the named ``outcome`` (to a stage, or closed as won or lost). ``stages.StageError`` names
    what the lead's pipeline does not offer."""
    if outcome:
        stage, status = stages.resolve_outcome(hub.config, lead, outcome)
        act(session, hub, lead, Action(actor=actor, status=status, stage=stage, stage_outcome=outcome))
    else:
        act(session, hub, lead, Action(actor=actor, stage=stages.target_stage(hub.config, lead, stage)))


def reassign(session: Session, out, hub, lead: Lead, assignee: str, actor: str = "api") -> None:
    """A lead waiting for a manual assignment also gets its manager's call task here."""
    now = hub.now()
    previous = lead.assignee_id
    lead.assignee_id = assignee
    via = "via the API" if actor == "api" else f"by {actor}"
    lead.assignment_reason = f"reassigned to {assignee} {via}"
    out.add(Assignment, lead_id=lead.id, member_id=assignee, reason=lead.assignment_reason, at=now)
    session.execute(update(Task).where(Task.lead_id == lead.id, Task.status == "open",
                                       Task.kind.in_(("call", "callback"))).values(assignee_id=assignee))
    history.record(out, lead.id, "reassigned", now, actor=actor, **{"from": previous, "to": assignee})
    if previous is None:
        assignment.assigned(session, out, hub, lead, now)


def close_open_tasks(session: Session, out, hub, lead: Lead, action: Action) -> bool:
    """The open call task is done with the action's outcome: its reminders stop; so does a
    running callback ladder. Whether anything was closed."""
    now = hub.now()
    tasks = list(session.scalars(select(Task).where(Task.lead_id == lead.id, Task.kind == "call",
                                                     Task.status == "open")))
    for task in tasks:
        task.status, task.outcome, task.closed_at = "done", action.outcome, now
        history.record(out, lead.id, "task_done", now, actor=action.actor, task=task.id, outcome=action.outcome)
    timers.cancel_for_lead(session, lead.id, ("reminder",))
    stopped = callbacks.stop_ladder(session, out, hub, lead.id, action.outcome)
    return bool(tasks) or stopped


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
