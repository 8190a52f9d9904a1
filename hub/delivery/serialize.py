"""Rows as the JSON shapes of the public API (README: HTTP interface)."""
from __future__ import annotations

from hub import clock
from hub.delivery.lifecycle import DUE
from hub.mapping import LEAD_KEYS, SOURCE_KEYS
from hub.pipeline.score import explain
from hub.rules.quiet_hours import client_zone, quiet_hours_reason
from hub.store.models import DeliveryStatus, Lead, LeadHistory, Notification, RawEvent, SyncDelivery, Task, Touch


def iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def source(value: dict | None) -> dict:
    value = value or {}
    return {key: value.get(key) for key in SOURCE_KEYS}


def event(raw: RawEvent) -> dict:
    return {
        "event_id": raw.event_id, "channel": raw.channel, "kind": raw.kind,
        "provider": raw.provider, "endpoint": raw.endpoint, "status": raw.status,
        "lead_number": raw.lead_id if raw.status == "processed" else None,
        "error": raw.error, "attempts": raw.attempts,
        "received_at": iso(raw.received_at), "processed_at": iso(raw.processed_at),
    }


def touch(item: Touch) -> dict:
    return {"at": iso(item.at), "channel": item.channel, "event_id": item.event_id,
            "source": source(item.source), "details": item.details}


def task(item: Task) -> dict:
    return {"id": item.id, "kind": item.kind, "title": item.title, "due_at": iso(item.due_at),
            "assignee": item.assignee_id, "status": item.status, "outcome": item.outcome,
            "step": item.step, "closed_at": iso(item.closed_at)}


def notification(item: Notification, now, why_held: str | None) -> dict:
    """``held_until`` and ``reason`` say when a row that waits will go out, and why."""
    waiting = item.status in DUE and item.next_attempt_at and item.next_attempt_at > now
    reason = None
    if waiting and item.status == DeliveryStatus.PENDING:
        reason = why_held or "waiting to be sent"
    elif waiting:
        reason = "retrying after a failed attempt"
    return {"id": item.id, "rule": item.rule, "channel": item.channel, "to": item.to,
            "text": item.text, "status": item.status, "attempts": item.attempts,
            "error": item.last_error, "sent_at": iso(item.sent_at),
            "held_until": iso(item.next_attempt_at) if waiting else None, "reason": reason}


def sync(item: SyncDelivery) -> dict:
    return {"target": item.target, "external_id": item.external_id, "status": item.status,
            "attempts": item.attempts, "error": item.last_error, "readback": item.readback}


def history(item: LeadHistory) -> dict:
    return {"at": iso(item.at), "actor": item.actor, "action": item.action, "details": item.details}


def lead(item: Lead, zone: str = "Europe/Moscow", now=None, quiet_hours: str | None = None) -> dict:
    now = now or clock.now()
    why_held = quiet_hours_reason(quiet_hours, client_zone(item.phone, zone).key)
    assignee = {"id": item.assignee.id, "name": item.assignee.name} if item.assignee else None
    return {
        "number": item.number, "status": item.status, "name": item.name, "phone": item.phone,
        "email": item.email, "message": item.message, "channel": item.channel,
        "source": source(item.source), "last_source": source(item.last_source),
        "touches": [touch(t) for t in item.touches],
        "assignee": assignee, "assignment_reason": item.assignment_reason,
        "tasks": [task(t) for t in item.tasks],
        "notifications": [notification(n, now, why_held if n.channel == "sms" else None)
                          for n in item.notifications],
        "sync": [sync(s) for s in item.syncs],
        "created_at": iso(item.created_at), "updated_at": iso(item.updated_at),
        "handled_at": iso(item.handled_at), "history": [history(h) for h in item.history],
        "problems": problems(item), **client_time(item, zone, now),
        "stage": stage(item, now), "score": score(item),
    }


def stage(item: Lead, now) -> dict | None:
    """The pipeline stage the lead is at, since when, and its deadline (null: no limit)."""
    if not item.stage:
        return None
    return {"pipeline": item.pipeline, "name": item.stage, "entered_at": iso(item.stage_entered_at),
            "deadline": iso(item.stage_due_at), "overdue": bool(item.stage_due_at and item.stage_due_at <= now)}


def score(item: Lead) -> dict | None:
    """``class``, ``probability`` (0..1, null while it is not learned), ``value`` and
    ``details`` (``text``: the explanation; points, rules, factors, override); null when the
    lead was not scored (no ``scoring:`` section)."""
    if item.score_class is None:
        return None
    details = item.score_details or {}
    return {"class": item.score_class, "probability": item.score_probability, "value": item.score_value,
            "details": {**details, "text": explain(details)} if details else {}}


def problems(item: Lead) -> dict[str, str]:
    """Malformed values the lead's touches brought (field -> what is wrong), the latest word
    per field, without those the lead has a usable value for by now."""
    found: dict[str, str] = {}
    for touch_row in item.touches:
        found.update((touch_row.details or {}).get("problems") or {})
    source_now = item.source or {}
    return {name: problem for name, problem in found.items()
            if not (getattr(item, name, None) if name in LEAD_KEYS else source_now.get(name))}


def client_time(item: Lead, team_zone: str, now) -> dict:
    zone = client_zone(item.phone, team_zone)
    return {"client_timezone": zone.key, "client_local_time": now.astimezone(zone).isoformat(timespec="minutes")}
