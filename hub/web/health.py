"""What /healthz and /metrics report: each dependency's state and the backlog."""
from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from hub.store.models import RawEvent
from hub.delivery.outbox import due_count


def check_db(hub) -> str:
    try:
        with hub.db.read() as session:
            session.execute(text("SELECT 1"))
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
            return {status: count for status, count in rows}
    except SQLAlchemyError:
        return {}


def outbox_due(hub) -> float:
    try:
        return due_count(hub)
    except SQLAlchemyError:
        return float("nan")
