"""Timers live in the database: rules schedule them here and ``hub.rules.firing`` fires
them, at most once each."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from hub.store.models import Timer


def schedule(out, key: str, kind: str, due_at: datetime, lead_id: int | None = None,
             task_id=None, **payload) -> None:
    """Keys are unique by construction (lead, stage, step...); the database enforces it."""
    out.add(Timer, key=key, kind=kind, due_at=due_at, lead_id=lead_id, task_id=task_id,
            payload=payload, status="pending")


def cancel_for_lead(session: Session, lead_id: int, kinds: tuple[str, ...] | None = None) -> None:
    query = update(Timer).where(Timer.lead_id == lead_id, Timer.status == "pending")
    if kinds:
        query = query.where(Timer.kind.in_(kinds))
    session.execute(query.values(status="cancelled"))
