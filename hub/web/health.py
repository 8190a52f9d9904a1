"""``/healthz``: each dependency's state and each mailbox's; the counts ``/metrics`` reads."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, jsonify
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from hub.delivery import sources
from hub.delivery.outbox import due_count
from hub.store.models import Checkpoint, RawEvent
from hub.web import current_hub

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    hub = current_hub()
    state = {"db": check_db(hub), "redis": check_redis(hub)}
    healthy = all(v == "ok" for v in state.values())
    if hub.config["mailboxes"]:
        state["mailboxes"] = mailbox_states(hub)
        healthy = healthy and all(v == "ok" for v in state["mailboxes"].values())
    state["sources"] = source_states(hub)  # shown, not failing the check: a quiet form is no outage
    response = jsonify(state)
    response.status_code = 200 if healthy else 503
    return response


def source_states(hub) -> dict[str, str]:
    """``{"forms/landing": "ok" | "silent since <instant>"}``; empty when the DB is down."""
    try:
        silent = sources.alarms(hub)
    except SQLAlchemyError:
        return {}
    return {key: f"silent since {since.isoformat()}" if since else "ok" for key, since in silent.items()}


def check_db(hub) -> str:
    try:
        with hub.db.read() as session:
            session.execute(text("SELECT 1"))
        if hub.db.journal is not None:
            hub.db.journal.backlog()  # the intake's own file opens and reads too
        return "ok"
    except SQLAlchemyError as exc:
        return f"down: {type(exc.orig or exc).__name__}"


def check_redis(hub) -> str:
    try:
        hub.kicker.connection.ping()
        return "ok"
    except Exception as exc:  # redis raises several families; any of them means "down"
        return f"down: {type(exc).__name__}"


def event_counts(hub) -> dict[str, int]:
    try:
        with hub.db.read() as session:
            rows = session.execute(select(RawEvent.status, func.count()).group_by(RawEvent.status))
            counts = {status: count for status, count in rows}
        unfiled = hub.db.journal.backlog() if hub.db.journal else 0  # accepted, not filed yet: pending too
        if unfiled:
            counts["pending"] = counts.get("pending", 0) + unfiled
        return counts
    except SQLAlchemyError:
        return {}


def outbox_due(hub) -> float:
    try:
        return due_count(hub)
    except SQLAlchemyError:
        return float("nan")


@dataclass(frozen=True)
class MailboxHealth:
    key: str
    last_success_at: datetime | None
    consecutive_errors: int
    last_error: str | None
    behind: int
    since: datetime | None  # the poller's start (or last write) when never successful


def mailbox_health(hub) -> list[MailboxHealth]:
    """One row per configured mailbox, from its checkpoint (empty when the DB is down)."""
    mailboxes = hub.config["mailboxes"]
    try:
        with hub.db.read() as session:
            rows = {(row.source, row.folder): row for row in session.scalars(
                select(Checkpoint).where(Checkpoint.source.in_(list(mailboxes))))}
    except SQLAlchemyError:
        return []
    health = []
    for key, settings in mailboxes.items():
        row = rows.get((key, settings["folder"]))
        health.append(MailboxHealth(key, None, 0, None, 0, None) if row is None else MailboxHealth(
            key, row.last_success_at, row.consecutive_errors or 0, row.last_error, row.behind or 0,
            row.updated_at))
    return health


def mailbox_states(hub) -> dict[str, str]:
    """``{key: "ok" | "stale: ..." | "error: ..."}`` for /healthz."""
    health = mailbox_health(hub)
    if not health:
        return {key: "error: database unavailable" for key in hub.config["mailboxes"]}
    now = hub.now()
    return {row.key: mailbox_state(row, now, hub.config["mailboxes"][row.key]["stale_after"]) for row in health}


def mailbox_state(row: MailboxHealth, now: datetime, stale_after) -> str:
    if row.consecutive_errors:
        return f"error: {row.consecutive_errors} failed polls in a row, last: {row.last_error}"
    if row.since is None:
        return "stale: never polled (the mail poller has not started)"
    if row.last_success_at is None:
        waited = now - row.since
        return f"stale: never polled, {waited.total_seconds():.0f}s since the poller started" \
            if waited > stale_after else "ok"
    silent = now - row.last_success_at
    return f"stale: no successful poll for {silent.total_seconds():.0f}s" if silent > stale_after else "ok"
