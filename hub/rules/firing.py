"""Firing due timers: each kind has its handler in ``HANDLERS``.

The scheduler claims due timers and runs their handlers in one transaction with marking them
fired: a scheduler killed half-way rolls back and fires them when it comes back; two
schedulers never fire the same timer (row locks on PostgreSQL, one writer on SQLite).
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.rules import callbacks, sla, tasks
from hub.store.models import Timer
from hub.store.writer import RowWriter

log = logging.getLogger("hub.timers")

HANDLERS = {"reminder": tasks.remind, "escalation": sla.escalate, "callback": callbacks.advance}


def fire_due(hub, limit: int = 100) -> int:
    """Fire every due timer; returns how many fired."""
    fired = 0
    while True:
        try:
            count = fire_batch(hub, limit)
        except Exception:  # one broken timer must not stop the others: isolate it
            log.exception("a timer batch failed; firing one by one")
            count = fire_one_by_one(hub, limit)
        fired += count
        if count < limit:
            return fired


def fire_batch(hub, limit: int, only: int | None = None) -> int:
    with hub.db.write() as session:
        out = RowWriter(session)
        due = claim(session, hub.now(), limit, only)
        for timer in due:
            HANDLERS[timer.kind](session, out, hub, timer)
            timer.status, timer.fired_at = "fired", hub.now()
        out.flush()
        return len(due)


def fire_one_by_one(hub, limit: int) -> int:
    with hub.db.read() as session:
        ids = [t.id for t in claim(session, hub.now(), limit)]
    for timer_id in ids:
        try:
            fire_batch(hub, 1, only=timer_id)
        except Exception as exc:
            with hub.db.write() as session:
                session.execute(update(Timer).where(Timer.id == timer_id).values(
                    status="failed", error=f"{type(exc).__name__}: {exc}"[:2000], fired_at=hub.now()))
    return len(ids)


def claim(session: Session, now: datetime, limit: int, only: int | None = None) -> list[Timer]:
    query = (select(Timer).where(Timer.status == "pending", Timer.due_at <= now)
             .order_by(Timer.due_at, Timer.id).limit(limit))
    if only is not None:
        query = query.where(Timer.id == only)
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))
