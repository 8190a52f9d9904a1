"""When each source last sent an event: ``source_states.last_event_at``, for the silence alarm
and the console's sources page. A batch writes one row per source it saw, not one per event."""
from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import bindparam, or_, update
from sqlalchemy.orm import Session

from hub.store.models import RawEvent, SourceState
from hub.store.writer import insert_missing


def source_key(kind: str, provider: str, endpoint: str | None) -> str:
    """``forms/<key>`` and ``mail/<mailbox>`` by endpoint; providers (``telephony/zadarma``) by name."""
    return f"{kind}/{endpoint if kind in ('forms', 'mail') else provider}"


def event_source(raw: RawEvent) -> str:
    return source_key(raw.kind, raw.provider, raw.endpoint)


def latest_by_source(work: list, events: list[RawEvent]) -> dict[str, datetime]:
    latest: dict[str, datetime] = {}

    def seen(key: str, at: datetime) -> None:
        latest[key] = max(at, latest.get(key, at))

    for raw in events:
        seen(event_source(raw), raw.received_at)
    for raw, item in work:
        if item.source.get("called_number"):
            seen(f"number/{item.source['called_number']}", raw.received_at)
    return latest


def note_events(session: Session, work: list, events: list[RawEvent]) -> None:
    latest = latest_by_source(work, events)
    if not latest:
        return
    connection = session.connection()
    insert_missing(connection, SourceState.__table__, [{"key": key} for key in latest])
    connection.execute(later_event_at(), [{"source": key, "at": at} for key, at in sorted(latest.items())])


@functools.cache
def later_event_at():
    """A source's ``last_event_at`` moved to ``at`` unless it is later already."""
    table = SourceState.__table__
    return update(table).where(table.c.key == bindparam("source"), or_(
        table.c.last_event_at.is_(None), table.c.last_event_at < bindparam("at", type_=table.c.last_event_at.type)
    )).values(last_event_at=bindparam("at"))
