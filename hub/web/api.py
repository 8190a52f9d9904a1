"""The JSON API under ``/api`` (bearer token)."""
from __future__ import annotations

import hmac

from flask import Blueprint, jsonify, request
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from hub.delivery import serialize
from hub.mapping import InvalidValue, normalise_phone
from hub.pipeline import manager_actions
from hub.store.models import Lead, RawEvent, Task
from hub.web import current_hub
from hub.web.errors import HubError

bp = Blueprint("api", __name__)
LEAD_STATUSES = ("new", "in_progress", "converted", "junk", "archived")
EVENT_STATUSES = ("pending", "processed", "ignored", "failed", "dead")
MAX_PAGE = 200


@bp.before_request
def require_token():
    expected = current_hub().environ.get("HUB_API_TOKEN")
    given = request.headers.get("Authorization", "")
    if not expected:
        raise HubError(401, "the API is disabled: HUB_API_TOKEN is not set", {"Authorization": "disabled"})
    if not given.startswith("Bearer "):
        raise HubError(401, "missing bearer token", {"Authorization": "missing"})
    if not hmac.compare_digest(given[len("Bearer "):].encode(), expected.encode()):
        raise HubError(403, "bad bearer token", {"Authorization": "invalid"})
    return None


def page_args() -> tuple[int, int | None]:
    try:
        limit = int(request.args.get("limit", 50))
        cursor = int(request.args["cursor"]) if request.args.get("cursor") else None
    except ValueError as exc:
        raise HubError(400, "limit and cursor are integers", {"limit": "integer", "cursor": "integer"}) from exc
    if not 1 <= limit <= MAX_PAGE:
        raise HubError(400, f"limit must be 1..{MAX_PAGE}", {"limit": f"1..{MAX_PAGE}"})
    return limit, cursor


def paginate(session, query, column, limit: int, cursor: int | None, render) -> dict:
    """Newest first; the cursor is the last id seen."""
    if cursor is not None:
        query = query.where(column < cursor)
    rows = list(session.scalars(query.order_by(column.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [render(row) for row in rows],
            "next_cursor": str(rows[-1].id) if more and rows else None}


def only_filters(*names: str) -> None:
    """A filter this list does not know is refused, not silently ignored."""
    unknown = sorted(set(request.args) - {"limit", "cursor", *names})
    if unknown:
        raise HubError(400, f"unknown filter {unknown[0]!r}; filters: {', '.join(names)}",
                       {name: "unknown filter" for name in unknown})


def one_of(name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.args.get(name)
    if value and value not in allowed:
        raise HubError(400, f"{name} must be one of {', '.join(allowed)}", {name: "invalid"})
    return value or None


@bp.get("/events/<event_id>")
def get_event(event_id: str):
    with current_hub().db.read() as session:
        raw = session.scalar(select(RawEvent).where(RawEvent.event_id == event_id))
        if raw is None:
            raise HubError(404, "no such event", {"event_id": "unknown"})
        return jsonify(serialize.event(raw))


@bp.get("/events")
def list_events():
    only_filters("kind", "provider", "status")
    limit, cursor = page_args()
    query = select(RawEvent)
    kind = request.args.get("kind")
    if kind:
        query = query.where(or_(RawEvent.kind == kind, RawEvent.channel == kind))
    if request.args.get("provider"):
        query = query.where(RawEvent.provider == request.args["provider"])
    status = one_of("status", EVENT_STATUSES)
    if status:
        query = query.where(RawEvent.status == status)
    with current_hub().db.read() as session:
        return jsonify(paginate(session, query, RawEvent.id, limit, cursor, serialize.event))


def render_lead(lead: Lead) -> dict:
    return serialize.lead(lead, current_hub().config["timezone"], current_hub().now(), current_hub().config["sms"]["quiet_hours"])


def lead_query():
    return select(Lead).options(selectinload(Lead.touches), selectinload(Lead.tasks),
                                selectinload(Lead.notifications), selectinload(Lead.syncs),
                                selectinload(Lead.history))


@bp.get("/leads")
def list_leads():
    only_filters("phone", "email", "channel", "status", "utm_source", "assignee")
    limit, cursor = page_args()
    query = lead_query()
    if request.args.get("phone"):
        try:
            phone = normalise_phone(request.args["phone"], current_hub().config["region"])
        except InvalidValue as exc:
            raise HubError(400, "phone is not a phone number", {"phone": str(exc)}) from exc
        query = query.where(Lead.phone == phone)
    if request.args.get("email"):
        query = query.where(Lead.email == request.args["email"].strip().lower())
    if request.args.get("channel"):
        query = query.where(Lead.channel == request.args["channel"])
    status = one_of("status", LEAD_STATUSES)
    if status:
        query = query.where(Lead.status == status)
    if request.args.get("utm_source"):
        query = query.where(Lead.source["utm_source"].as_string() == request.args["utm_source"])
    if request.args.get("assignee"):
        query = query.where(Lead.assignee_id == request.args["assignee"])
    with current_hub().db.read() as session:
        return jsonify(paginate(session, query, Lead.id, limit, cursor, render_lead))


@bp.get("/leads/<int:number>")
def get_lead(number: int):
    with current_hub().db.read() as session:
        lead = session.scalar(lead_query().where(Lead.id == number))
        if lead is None:
            raise HubError(404, "no such lead", {"number": "unknown"})
        return jsonify(render_lead(lead))


@bp.patch("/leads/<int:number>")
def update_lead(number: int):
    """What a manager does in the CRM: change the status, hand the lead to someone else."""
    status, assignee = lead_changes(request.get_json(silent=True))
    with current_hub().db.write() as session:
        lead = session.get(Lead, number)
        if lead is None:
            raise HubError(404, "no such lead", {"number": "unknown"})
        manager_actions.update_lead(session, current_hub(), lead, status, assignee)
    current_hub().kicker.kick("sync")
    return get_lead(number)


def lead_changes(changes) -> tuple[str | None, str | None]:
    if not isinstance(changes, dict) or not changes.keys() & {"status", "assignee"}:
        raise HubError(400, "send a JSON object with status and/or assignee", {"body": "invalid"})
    status, assignee = changes.get("status"), changes.get("assignee")
    if status is not None and status not in LEAD_STATUSES:
        raise HubError(422, f"status must be one of {', '.join(LEAD_STATUSES)}", {"status": "invalid"})
    if assignee is not None and assignee not in {m["id"] for m in current_hub().config["team"]}:
        raise HubError(422, "assignee is not a team member id", {"assignee": "unknown"})
    return status, assignee


@bp.post("/tasks/<int:task_id>/done")
def close_task(task_id: int):
    body = request.get_json(silent=True) or {}
    outcome = body.get("outcome")
    if outcome is not None and not isinstance(outcome, str):
        raise HubError(400, "outcome is a string", {"outcome": "invalid"})
    with current_hub().db.write() as session:
        task = session.get(Task, task_id)
        if task is None:
            raise HubError(404, "no such task", {"task_id": "unknown"})
        manager_actions.close_task(session, current_hub(), task, outcome)
        return jsonify(serialize.task(task))
