"""SLA escalation chains: a lead nobody handles goes to the head, then to the director.

Three kinds of chain run on the same steps: ``new`` (the lead is still untouched by its manager
after its first-response time), a status limit (the lead sat in one status too long) and a
pipeline stage's limit (``hub.rules.stages``; its payload names the ``pipeline``). Any manager
action through the API stops a ``new`` chain; a status change stops a status chain; moving the
lead to another stage, or any status change, stops a stage's chain.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from hub.durations import format_duration, parse_duration
from hub.rules import history, people, timers
from hub.rules.tasks import business_hours
from hub.store.models import Lead, Notification, Task, Timer


def sla_of(config, lead: Lead) -> dict:
    """The SLA of the routing rule that assigned the lead, or the global one."""
    rule = next((r for r in config["routing"] if r["name"] == lead.routing_rule), None)
    return (rule or {}).get("sla") or config["sla"]


def start_new_chain(out, hub, lead: Lead, sla: dict, hours=None, start=None) -> None:
    start = start or lead.created_at
    schedule_step(out, hub, lead, stored_chain(sla), 0, start, stage="new", since=start, hours=hours)


def start_stage_limit(out, hub, lead: Lead, sla: dict) -> None:
    """On a status change: bound the time the lead may stay in its new status."""
    limit = sla["stage_limits"].get(lead.status)
    if limit and lead.status_changed_at:
        due = business_hours(hub.config).add(lead.status_changed_at, limit)
        key = f"lead:{lead.id}:stage:{lead.status}:{lead.status_changed_at.isoformat()}:0"
        timers.schedule(out, key, "escalation", due, lead_id=lead.id, step=0, sla=stored_chain(sla),
                        stage=lead.status, since=lead.status_changed_at.isoformat(), limit=format_duration(limit))


def stored_chain(sla: dict) -> dict:
    """The escalation chain as a timer keeps it (JSON), durations spelt as in the config."""
    return {"escalation": [{"to": step["to"], "after": format_duration(step["after"])}
                           for step in sla["escalation"]]}


def schedule_step(out, hub, lead: Lead, sla: dict, step: int, start: datetime,
                  stage: str, since: datetime, hours=None, **extra) -> None:
    """``sla`` as ``stored_chain`` gives it (timers written by earlier versions hold the whole
    section, with the same spelling); ``extra`` goes on to the step's payload (a pipeline
    stage's ``pipeline`` and ``limit``)."""
    if step >= len(sla["escalation"]):
        return
    hours = hours or business_hours(hub.config)
    due = hours.add(start, parse_duration(sla["escalation"][step]["after"]))
    scope = f"pipeline:{extra['pipeline']}" if extra.get("pipeline") else "stage"
    timers.schedule(out, f"lead:{lead.id}:{scope}:{stage}:{since.isoformat()}:{step}", "escalation",
                    due, lead_id=lead.id, step=step, sla=sla, stage=stage, since=since.isoformat(), **extra)


def chain_stopped(lead: Lead, payload: dict) -> bool:
    if payload["stage"] == "assign":  # waiting for a manual assignment
        return lead.assignee_id is not None or lead.status not in ("new", "in_progress")
    if payload.get("pipeline"):  # a pipeline stage: runs while the lead stays at it
        entered = lead.stage_entered_at.isoformat() if lead.stage_entered_at else None
        return (lead.status != "in_progress" or (lead.pipeline, lead.stage) != (payload["pipeline"], payload["stage"])
                or entered != payload["since"])
    if payload["stage"] == "new":
        return lead.status != "new" or lead.handled_at is not None
    changed = lead.status_changed_at.isoformat() if lead.status_changed_at else None
    return lead.status != payload["stage"] or changed != payload["since"]


def escalate(session: Session, out, hub, timer: Timer) -> None:
    lead = session.get(Lead, timer.lead_id) if timer.lead_id else None
    payload = timer.payload
    if lead is None or chain_stopped(lead, payload):
        return
    step = payload["sla"]["escalation"][payload["step"]]
    person = people.resolve(hub.config, step["to"])
    if person is None:
        history.record(out, lead.id, "escalation_skipped", hub.now(), step=payload["step"],
                       reason=f"the team has no {step['to']}")
    else:
        hand_over(out, hub, lead, person, payload)
    since = datetime.fromisoformat(payload["since"])
    extra = {key: payload[key] for key in ("pipeline", "limit") if payload.get(key)}
    schedule_step(out, hub, lead, payload["sla"], payload["step"] + 1, timer.due_at,
                  payload["stage"], since, **extra)


def hand_over(out, hub, lead: Lead, person: dict, payload: dict) -> None:
    if payload["stage"] == "assign":
        title = f"Lead {lead.id} still has no manager: assign one"
    elif payload["stage"] == "new":
        title = f"Assign or handle lead {lead.id}"
    elif payload.get("pipeline"):
        title = (f"Lead {lead.id} is at stage {payload['stage']} ({payload['pipeline']}) longer than "
                 f"{payload.get('limit')}: move it on")
    else:
        title = f"Lead {lead.id} is {payload['stage']} longer than {payload.get('limit')}: move it on"
    out.add(Task, lead_id=lead.id, kind="escalation", title=title, due_at=hub.now(),
            assignee_id=person["id"], status="open", created_at=hub.now())
    reach = people.contact_channel(hub.config, person)
    if reach:
        channel, sender, address = reach
        out.add(Notification, lead_id=lead.id,
                rule=f"escalation:{payload['stage']}:{payload['since']}:{payload['step']}",
                channel=channel, sender=sender, to=address, subject=title, next_attempt_at=hub.now(),
                text=f"{title}. Owner: {lead.assignee_id or 'nobody'}. Reason: {lead.assignment_reason or '-'}")
    history.record(out, lead.id, "escalated", hub.now(), to=person["id"], step=payload["step"],
                   stage=payload["stage"])
