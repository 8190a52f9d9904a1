"""The JSON API under ``/api`` (bearer token)."""
from __future__ import annotations

import hmac
import re

from flask import Blueprint, jsonify, request
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from connectors.base import MAX_WHOLE_NUMBER, clean_text, whole_number
from hub.config import SCORE_CLASSES
from hub.delivery import serialize
from hub.mapping import InvalidValue, normalise_phone
from hub.pipeline import manager_actions, score
from hub.rules.stages import StageError
from hub.store.journal import find_event
from hub.store.models import Lead, RawEvent, Task
from hub.web import current_hub, openapi
from hub.web.body import json_body
from hub.web.errors import HubError

bp = Blueprint("api", __name__)
LEAD_STATUSES = ("new", "in_progress", "converted", "junk", "archived")
EVENT_STATUSES = ("pending", "processed", "ignored", "failed", "dead")
MAX_PAGE = 200
EVENT_ID = re.compile(r"[0-9a-f]{32}")


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


@bp.before_request
def refuse_nul_characters():
    """PostgreSQL cannot compare text holding a NUL: such a query parameter is a 400, not a crash."""
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            raise HubError(400, "a query parameter holds a NUL character",
                           {clean_text(name) or "query": "holds a NUL character"})


def page_args() -> tuple[int, int | None]:
    return number_arg("limit", MAX_PAGE) or 50, number_arg("cursor", MAX_WHOLE_NUMBER)


def number_arg(name: str, maximum: int) -> int | None:
    """A whole-number query parameter from 1 to ``maximum``; ``None`` when absent or blank."""
    text = request.args.get(name, "")
    if not text:
        return None
    try:
        value = whole_number(text, maximum)
    except ValueError:
        value = 0
    if value < 1:
        raise HubError(400, f"{name} must be a whole number from 1 to {maximum}", {name: f"1..{maximum}"})
    return value


def path_id(text: str, name: str, what: str) -> int:
    """A lead number or task id from the URL; 404 naming it when it cannot be one."""
    try:
        value = whole_number(text)
    except ValueError:
        value = 0
    if value < 1:
        raise HubError(404, f"no such {what}", {name: f"a whole number from 1 to {MAX_WHOLE_NUMBER}"})
    return value


def request_json() -> dict:
    """The request's JSON object (``{}`` for an empty body); 400 for anything else."""
    document = json_body(request, current_hub().config["limits"]["body_bytes"])
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise HubError(400, "send a JSON object", {"body": f"expected an object, got {type(document).__name__}"})
    return document


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
    if not EVENT_ID.fullmatch(event_id):
        raise HubError(404, "no such event", {"event_id": "unknown"})
    with current_hub().db.read() as session:
        raw = find_event(current_hub().db, session, event_id)
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
    hub = current_hub()
    return serialize.lead(lead, hub.config["timezone"], hub.now(), hub.config["sms"]["quiet_hours"])


def lead_query():
    return select(Lead).options(selectinload(Lead.touches), selectinload(Lead.tasks),
                                selectinload(Lead.notifications), selectinload(Lead.syncs),
                                selectinload(Lead.history))


@bp.get("/leads")
def list_leads():
    only_filters("phone", "email", "channel", "status", "utm_source", "assignee", "stage", "class")
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
    if request.args.get("stage"):
        query = query.where(Lead.stage == request.args["stage"])
    score_class = one_of("class", SCORE_CLASSES)
    if score_class:
        query = query.where(Lead.score_class == score_class)
    with current_hub().db.read() as session:
        return jsonify(paginate(session, query, Lead.id, limit, cursor, render_lead))


@bp.get("/leads/<number>")
def get_lead(number: str):
    number = path_id(number, "number", "lead")
    with current_hub().db.read() as session:
        lead = session.scalar(lead_query().where(Lead.id == number))
        if lead is None:
            raise HubError(404, "no such lead", {"number": "unknown"})
        return jsonify(render_lead(lead))


@bp.get("/openapi.json")
def openapi_document():
    return jsonify(openapi.document(current_hub().config, MAX_PAGE, EVENT_STATUSES, LEAD_STATUSES))


@bp.patch("/leads/<number>")
def update_lead(number: str):
    """What a manager does in the CRM: change the status, hand the lead to someone else, move
    it to a pipeline stage (``stage``: a name or ``next``) or record a named ``outcome``."""
    number = path_id(number, "number", "lead")
    changes = request_json()
    status, assignee = lead_changes(changes)
    stage, outcome = stage_changes(changes, status)
    with current_hub().db.write() as session:
        lead = session.get(Lead, number)
        if lead is None:
            raise HubError(404, "no such lead", {"number": "unknown"})
        manager_actions.update_lead(session, current_hub(), lead, status, assignee)
        if stage or outcome:
            try:
                manager_actions.move_lead(session, current_hub(), lead, stage, outcome)
            except StageError as error:  # the transaction rolls back: nothing changed
                raise HubError(422, f"{error.field}: {error}", {error.field: str(error)}) from None
    current_hub().kicker.kick("sync")
    return get_lead(str(number))


def stage_changes(changes: dict, status: str | None) -> tuple[str | None, str | None]:
    stage, outcome = changes.get("stage"), changes.get("outcome")
    if stage is not None and outcome is not None:
        raise HubError(400, "send either stage or outcome", {"outcome": "not with stage"})
    if (stage is not None or outcome is not None) and status is not None:
        raise HubError(400, "a stage or outcome sets the status itself: send no status with it",
                       {"status": "not with stage or outcome"})
    return stage or None, outcome or None


def lead_changes(changes: dict) -> tuple[str | None, str | None]:
    if not changes.keys() & {"status", "assignee", "stage", "outcome"}:
        raise HubError(400, "send a JSON object with status, assignee, stage or outcome", {"body": "invalid"})
    status, assignee = changes.get("status"), changes.get("assignee")
    for name in ("status", "assignee", "stage", "outcome"):
        if changes.get(name) is not None and not isinstance(changes[name], str):
            raise HubError(400, f"{name} is a string", {name: "not a string"})
    if status is not None and status not in LEAD_STATUSES:
        raise HubError(422, f"status must be one of {', '.join(LEAD_STATUSES)}", {"status": "invalid"})
    if assignee is not None and assignee not in {m["id"] for m in current_hub().config["team"]}:
        raise HubError(422, "assignee is not a team member id", {"assignee": "unknown"})
    return status, assignee


@bp.post("/tasks/<task_id>/done")
def close_task(task_id: str):
    task_id = path_id(task_id, "task_id", "task")
    outcome = request_json().get("outcome")
    if outcome is not None and not isinstance(outcome, str):
        raise HubError(400, "outcome is a string", {"outcome": "invalid"})
    with current_hub().db.write() as session:
        task = session.get(Task, task_id)
        if task is None:
            raise HubError(404, "no such task", {"task_id": "unknown"})
        manager_actions.close_task(session, current_hub(), task, clean_text(outcome) if outcome else outcome)
        return jsonify(serialize.task(task))


SCORE_OVERRIDERS = ("head", "director")


@bp.post("/leads/<number>/score")
def override_score(number: str):
    """A head or director moves the lead's class up or down by one (``reset``: back to the
    scored class); ``by`` names them, and their role is checked."""
    number = path_id(number, "number", "lead")
    change, actor = score_change(request_json())
    with current_hub().db.write() as session:
        lead = session.get(Lead, number)
        if lead is None:
            raise HubError(404, "no such lead", {"number": "unknown"})
        try:
            score.override(session, current_hub(), lead, change, actor)
        except score.OverrideRefused as exc:
            raise HubError(409, str(exc), {"change": str(exc)}) from exc
    current_hub().kicker.kick("sync")
    return get_lead(str(number))


def score_change(body: dict) -> tuple[str, str]:
    change, actor = body.get("change"), body.get("by")
    if not isinstance(change, str) or change not in score.CHANGES:
        raise HubError(422, f"change must be one of {', '.join(score.CHANGES)}", {"change": "invalid"})
    if not isinstance(actor, str) or not actor:
        raise HubError(422, "by must name the head or director making the change", {"by": "missing"})
    member = next((m for m in current_hub().config["team"] if m["id"] == actor), None)
    if member is None:
        raise HubError(422, "by is not a team member id", {"by": "unknown"})
    if member["role"] not in SCORE_OVERRIDERS:
        raise HubError(403, "only a head or director may change a lead's class", {"by": f"role {member['role']}"})
    return change, actor
