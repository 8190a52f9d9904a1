"""Replaying stored events and dead notifications, for operators."""
from __future__ import annotations

from sqlalchemy import select

from hub.delivery import crm, crm_readback, outbox, serialize
from hub.pipeline import process_batch
from hub.store.models import RawEvent


def replay_events(hub, event_id: str | None = None, failed: bool = False, as_lead: bool = False) -> list[str]:
    """Reset the chosen events to pending and process them now. Touch keys make this safe:
    an event already merged into a lead is linked again, never doubled. ``as_lead`` overrides
    the provider's reason to ignore the event (an auto-reply that was a real request). CRM
    events are read back again; a change already applied is not applied twice."""
    hub.db.file_intake()  # an event still in the intake journal is found too
    with hub.db.write() as session:
        query = select(RawEvent)
        if event_id:
            query = query.where(RawEvent.event_id == event_id)
        else:
            query = query.where(RawEvent.status.in_(("failed", "dead")))
        events = list(session.scalars(query.order_by(RawEvent.id)))
        if event_id and not events:
            raise LookupError(f"no event {event_id}")
        for raw in events:
            raw.status, raw.error, raw.attempts, raw.retry_at = "pending", None, 0, None
            if as_lead:
                raw.override = "as-lead"
        ids = [raw.id for raw in events if raw.kind != crm_readback.KIND]
        crm_ids = [raw.id for raw in events if raw.kind == crm_readback.KIND]
    crm_readback.drain(hub, ids=crm_ids)
    for start in range(0, len(ids), 500):
        process_batch(hub, 500, ids[start:start + 500])
    hub.kicker.kick("outbox")
    with hub.db.read() as session:
        rows = session.scalars(select(RawEvent).where(RawEvent.id.in_(ids + crm_ids)).order_by(RawEvent.id))
        return [describe(serialize.event(raw)) for raw in rows]


def describe(event: dict) -> str:
    lead = f" lead {event['lead_number']}" if event["lead_number"] else ""
    error = f" ({event['error'].strip().splitlines()[-1]})" if event["error"] else ""
    return f"{event['event_id']} {event['status']}{lead}{error}"


def replay_notifications(hub, ids: list[int] | None = None, channel: str | None = None) -> int:
    count = outbox.replay(hub, ids=ids, channel=channel)
    hub.kicker.kick("outbox")
    return count


def replay_syncs(hub, ids: list[int] | None = None, target: str | None = None) -> int:
    count = crm.replay(hub, ids=ids, target=target)
    hub.kicker.kick("sync")
    return count


def triage(hub, event_id: str, verdict: str, actor: str) -> list[str]:
    """An operator's word on an ignored event: ``lead`` makes a lead of it (as ``--as-lead``),
    ``spam`` confirms the ignore. Who said so, and when, stays on the event."""
    if verdict not in ("lead", "spam"):
        raise ValueError(f"verdict must be lead or spam, not {verdict!r}")
    hub.db.file_intake()
    with hub.db.write() as session:
        raw = session.scalar(select(RawEvent).where(RawEvent.event_id == event_id))
        if raw is None:
            raise LookupError(f"no event {event_id}")
        raw.triaged_by, raw.triaged_at = actor, hub.now()
        if verdict == "spam":
            raw.override = "spam"
            return [describe(serialize.event(raw))]
    return replay_events(hub, event_id=event_id, as_lead=True)
