"""SLA escalation chains: a lead nobody handles goes to the head, then to the director.

Two kinds of chain run on the same steps: ``new`` (the lead is still untouched by its manager
after its first-response time) and a stage limit (the lead sat in one status too long). Any
manager action through the API stops a ``new`` chain; a status change stops a stage chain.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from hub.durations import parse_duration
from hub.models import Lead, Notification, Task, Timer
from hub.rules import history, people, timers
from hub.rules.tasks import business_hours


def sla_of(config, lead: Lead) -> dict:
    """The SLA of the routing rule that assigned the lead, or the global one."""
    rule = next((r for r in config["routing"] if r["name"] == lead.routing_rule), None)
    return (rule or {}).get("sla") or config["sla"]


def start_new_chain(session: Session, hub, lead: Lead, sla: dict) -> None:
    schedule_step(session, hub, lead, sla, 0, lead.created_at, stage="new", since=lead.created_at)


def start_stage_limit(session: Session, hub, lead: Lead, sla: dict) -> None:
    """On a status change: bound the time the lead may stay in its new status."""
    limit = sla["stage_limits"].get(lead.status)
    if limit and lead.status_changed_at:
        due = business_hours(hub.config).add(lead.status_changed_at, parse_duration(limit))
        key = f"lead:{lead.id}:stage:{lead.status}:{lead.status_changed_at.isoformat()}:0"
        timers.schedule(session, key, "escalation", due, lead_id=lead.id, step=0, sla=sla,
                        stage=lead.status, since=lead.status_changed_at.isoformat(), limit=limit)


def schedule_step(session: Session, hub, lead: Lead, sla: dict, step: int, start: datetime,
                  stage: str, since: datetime) -> None:
    if step >= len(sla["escalation"]):
        return
    due = business_hours(hub.config).add(start, parse_duration(sla["escalation"][step]["after"]))
    timers.schedule(session, f"lead:{lead.id}:stage:{stage}:{since.isoformat()}:{step}", "escalation",
                    due, lead_id=lead.id, step=step, sla=sla, stage=stage, since=since.isoformat())


def chain_stopped(lead: Lead, payload: dict) -> bool:
    if payload["stage"] == "new":
        return lead.status != "new" or lead.handled_at is not None
    changed = lead.status_changed_at.isoformat() if lead.status_changed_at else None
    return lead.status != payload["stage"] or changed != payload["since"]


def escalate(session: Session, hub, timer: Timer) -> None:
    lead = session.get(Lead, timer.lead_id) if timer.lead_id else None
    payload = timer.payload
    if lead is None or chain_stopped(lead, payload):
        return
    step = payload["sla"]["escalation"][payload["step"]]
    person = people.resolve(hub.config, step["to"])
    if person is None:
        history.record(session, lead.id, "escalation_skipped", hub.now(), step=payload["step"],
                       reason=f"the team has no {step['to']}")
    else:
        hand_over(session, hub, lead, person, payload)
    since = datetime.fromisoformat(payload["since"])
    schedule_step(session, hub, lead, payload["sla"], payload["step"] + 1, timer.due_at,
                  payload["stage"], since)


def hand_over(session: Session, hub, lead: Lead, person: dict, payload: dict) -> None:
    if payload["stage"] == "new":
        title = f"Assign or handle lead {lead.id}"
    else:
        title = f"Lead {lead.id} is {payload['stage']} longer than {payload.get('limit')}: move it on"
    task = Task(lead_id=lead.id, kind="escalation", title=title, due_at=hub.now(), assignee_id=person["id"])
    session.add(task)
    reach = people.contact_channel(hub.config, person)
    if reach:
        channel, sender, address = reach
        session.add(Notification(
            lead_id=lead.id, rule=f"escalation:{payload['stage']}:{payload['since']}:{payload['step']}",
            channel=channel, sender=sender, to=address, subject=title,
            text=f"{title}. Owner: {lead.assignee_id or 'nobody'}. Reason: {lead.assignment_reason or '-'}"))
    history.record(session, lead.id, "escalated", hub.now(), to=person["id"], step=payload["step"],
                   stage=payload["stage"])
