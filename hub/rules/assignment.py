"""Manual assignment. A routing rule with ``assign: {strategy: manual, by: head}`` leaves the
lead unassigned and gives the head a task to choose its manager, due ``within`` (default: the
SLA's first response), reminded like any task and escalated to ``escalate_to`` (the director)
if the lead still has nobody by then. Assigning it (console, API or CRM) closes that task and
starts the manager's own: the call task and the SLA chain, counted from the assignment."""
from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from hub.durations import format_duration
from hub.rules import history, people, timers
from hub.rules import sla as sla_rules
from hub.rules.tasks import business_hours, open_first_task
from hub.store.models import Lead, Task

KIND = "assign"
STAGE = "assign"  # the escalation chain that runs while the lead waits for its manager


def request_assignment(out, hub, lead, rule: dict, sla: dict, hours=None) -> None:
    hours = hours or business_hours(hub.config)
    assign = rule["assign"]
    person = people.resolve(hub.config, assign["by"])
    within = assign["within"] or sla["first_response"]
    due = hours.add(lead.created_at, within)
    task = out.add(Task, lead_id=lead.id, kind=KIND, title=f"Assign a responsible manager to lead {lead.id}",
                   due_at=due, assignee_id=person["id"] if person else None, status="open", created_at=hub.now())
    if sla["remind_every"]:
        timers.schedule(out, f"lead:{lead.id}:assign:reminder:1", "reminder", due, lead_id=lead.id,
                        task_id=task, n=1, every=format_duration(sla["remind_every"]))
    chain = {"escalation": [{"to": assign["escalate_to"], "after": format_duration(within)}]}
    sla_rules.schedule_step(out, hub, lead, chain, 0, lead.created_at, stage=STAGE, since=lead.created_at,
                            hours=hours)
    history.record(out, lead.id, "assign_requested", hub.now(), by=person["id"] if person else assign["by"])


def assigned(session: Session, out, hub, lead: Lead, now) -> bool:
    """The waiting lead got its manager: the assignment task closes, the manager's call task
    opens. False when the lead was not waiting for a manual assignment."""
    closed = session.execute(update(Task).where(Task.lead_id == lead.id, Task.kind == KIND, Task.status == "open")
                             .values(status="done", outcome=f"assigned to {lead.assignee_id}", closed_at=now)).rowcount
    if not closed:
        return False
    lead.handled_at = None  # the manager has not acted yet: their own SLA chain starts now
    sla = sla_rules.sla_of(hub.config, lead)
    open_first_task(out, hub, lead, sla, start=now)
    sla_rules.start_new_chain(out, hub, lead, sla, start=now)
    return True
