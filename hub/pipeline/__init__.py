"""The lead pipeline: pending raw events in, leads out, in batches.

normalise -> dedupe -> route -> confirm -> sync run in one transaction per batch, so a batch
either happens completely or not at all; a killed worker leaves its events pending. A touch is
unique per ``touch_key``, so running an event twice (a replay, a retried batch) changes nothing.
"""
from __future__ import annotations

import functools
import logging
import time
import traceback
from dataclasses import dataclass, field

from sqlalchemy import Integer, bindparam, select, text, update
from sqlalchemy.orm import Session

from hub import retry
from hub.pipeline.activity import note_events
from hub.pipeline.confirm import plan_confirmations
from hub.pipeline.dedupe import ContactIndex, existing_touches
from hub.pipeline.merge import Batch, thread_index
from hub.pipeline.normalise import normalise
from hub.pipeline.route import Counters, decide, facts_of, sync_team, uses_geography
from hub.pipeline.score import Scorer, apply, route_facts
from hub.pipeline.store import NewLead, NewTouch, write_new
from hub.pipeline.sync import plan_syncs, queue_update
from hub.rules.assignment import request_assignment
from hub.rules.callbacks import start_ladder, stop_ladder
from hub.rules.history import record
from hub.rules.sla import sla_of, start_new_chain
from hub.rules.tasks import business_hours, open_first_task
from hub.store.models import Assignment, Lead, Notification, RawEvent, Touch
from hub.store.prepared import execute_many
from hub.store.writer import RowWriter

log = logging.getLogger("hub.pipeline")
PIPELINE_LOCK = 0x4C656164  # "Lead": one pipeline writer at a time on PostgreSQL
CRM_KIND = "crm"  # CRM events are read back by hub.delivery.crm_readback, not made into leads


@functools.cache
def lead_events():
    """Pending raw events this pipeline takes: every kind but CRM events (built once: a
    statement is immutable, and building it cost more than a small batch's query)."""
    return select(RawEvent).where(RawEvent.status == "pending", RawEvent.kind != CRM_KIND)


@functools.cache
def next_pending():
    """The first ``limit`` pending events."""
    return lead_events().order_by(RawEvent.id).limit(bindparam("limit", type_=Integer))


@functools.cache
def still_pending():
    """Of the events ``ids``, those still pending."""
    return lead_events().with_only_columns(RawEvent.id).where(RawEvent.id.in_(bindparam("ids", expanding=True)))


@dataclass
class BatchResult:
    events: int = 0
    new_leads: list[int] = field(default_factory=list)
    notifications: int = 0
    syncs: int = 0
    latencies: list[float] = field(default_factory=list)
    locked: float = 0.0  # seconds the batch's write transaction took (what holds SQLite's writer lock)
    more: bool = False  # the drain stopped for time with events left
    team: list | None = None  # the team this batch mirrored into the database


def process_pending(hub, limit: int | None = None, max_seconds: float = 60.0) -> BatchResult:
    """Drain pending events batch by batch (for at most ``max_seconds``).

    On SQLite the events the intake committed to its journal are filed into raw_events before
    each batch (``hub.store.journal``). Each batch is one write transaction, and there every
    other writer of the database (an operator's edit in the console, the timed rules, a filing)
    waits for it. So a batch is sized to last about ``pipeline.slice``, from the time the
    batches before it took per event (remembered from one call to the next, so the first batch
    of a call is sized too), and between batches the writers that queued for the lock meanwhile
    go first. While no writer queues, each batch may be twice the one before, up to
    ``batch_size``: a backlog drains in whole batches, cheaper per event."""
    limit = limit or hub.config["pipeline"]["batch_size"]
    target = hub.config["pipeline"]["slice"].total_seconds() if shares_writer_lock(hub) else 0
    lock = hub.db.writer_lock if target else None
    total, calm = BatchResult(), 0
    started = time.monotonic()
    while time.monotonic() - started < max_seconds:
        size = min(limit, slice_size(hub.pace.get(PACE), target, limit) << calm)
        hub.db.file_intake()
        result = process_batch(hub, size)
        total.events += result.events
        total.new_leads += result.new_leads
        total.notifications += result.notifications
        total.syncs += result.syncs
        total.latencies += result.latencies
        if result.events >= MIN_SLICE_EVENTS and result.locked:
            hub.pace[PACE] = result.locked / result.events
        if result.events < size:
            return total
        if lock is not None:
            calm = 0 if lock.let_waiting_writers_in(YIELD_LIMIT) else min(calm + 1, MAX_DOUBLINGS)
    total.more = True
    return total


def shares_writer_lock(hub) -> bool:
    """SQLite: one writer at a time. PostgreSQL's other writers never wait for a batch, so there
    batches are whole (``batch_size``): fewer, cheaper per event."""
    return hub.db.engine.dialect.name == "sqlite"


PACE = "pipeline"  # hub.pace: seconds a batch took per event
# hub.pace: the team as this process last mirrored it into the database. Only the pipeline
# writes the team's rows, so while the config's team stays the same a batch skips the mirror.
TEAM = "team"
YIELD_LIMIT = 0.01  # seconds a batch waits at most for the writers queued as the one before ended
MAX_DOUBLINGS = 6  # a slice grows to at most 64 times its size while no writer queues
MIN_SLICE_EVENTS = 20  # below this the per-batch work outweighs the events'


def slice_size(per_event: float | None, target: float, limit: int) -> int:
    """The next batch's size: as many events as fit ``target`` seconds at the pace so far."""
    if not target or not per_event:
        return limit
    return max(MIN_SLICE_EVENTS, min(limit, int(target / per_event)))


def process_batch(hub, limit: int, event_ids: list[int] | None = None) -> BatchResult:
    try:
        work = read_and_normalise(hub, limit, event_ids)
        began = time.monotonic()
        with hub.db.write() as session:
            result = run_batch(session, hub, claim(session, work))
        result.locked = time.monotonic() - began
        if result.team is not None:
            hub.pace[TEAM] = result.team  # committed: later batches need not mirror it again
        return result
    except Exception:  # one bad event must not hold up the others: isolate it
        hub.pace.pop(TEAM, None)  # mirrored again by the next batch, in case its rows are what failed
        ids = event_ids or pending_ids(hub, limit)
        if len(ids) <= 1:
            if ids:
                record_failure(hub, ids[0])
            return BatchResult(events=len(ids))
        log.warning("batch of %d failed; processing its events one by one", len(ids), exc_info=True)
        results = [process_batch(hub, 1, [event_id]) for event_id in ids]
        return merge_results(results)


def merge_results(results: list[BatchResult]) -> BatchResult:
    merged = BatchResult()
    for result in results:
        merged.events += result.events
        merged.new_leads += result.new_leads
        merged.notifications += result.notifications
        merged.syncs += result.syncs
        merged.latencies += result.latencies
    return merged


def read_and_normalise(hub, limit: int, event_ids: list[int] | None) -> dict[int, tuple]:
    """The pending events of the next batch, each with what its provider module makes of it
    ({id: (event, normalised items)}), read and parsed before the batch's write transaction:
    parsing depends on nothing but the event, and SQLite's writer lock (which the intake's
    commits wait for) is then held only for the batch's reads and writes of leads."""
    query = next_pending() if event_ids is None else next_pending().where(RawEvent.id.in_(event_ids))
    with hub.db.read() as session:
        events = list(session.scalars(query, {"limit": limit}))
        session.expunge_all()  # detached: their outcomes are written by ``settle``, in one statement
    return {raw.id: (raw, normalise(hub.config, raw)) for raw in events}


def claim(session: Session, work: dict[int, tuple]) -> list[tuple]:
    """Of the events read, those still pending now that the batch may write (another worker,
    a replay, may have taken some meanwhile), with their normalised items, in order."""
    if not work:
        return []
    if session.bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PIPELINE_LOCK})
    pending = set(session.scalars(still_pending(), {"ids": list(work)}))
    return [work[event_id] for event_id in sorted(pending)]


def pending_ids(hub, limit: int) -> list[int]:
    with hub.db.read() as session:
        query = lead_events().with_only_columns(RawEvent.id).order_by(RawEvent.id).limit(limit)
        return list(session.scalars(query))


def record_failure(hub, event_id: int) -> None:
    """A single event that cannot be processed: failed (retried later) or, at the limit, dead."""
    error = traceback.format_exc(limit=3)
    policy = retry.for_events(hub.config["pipeline"])
    with hub.db.write() as session:
        raw = session.get(RawEvent, event_id)
        raw.attempts += 1
        raw.status = "dead" if policy.exhausted(raw.attempts) else "failed"
        raw.error = error[-4000:]
        raw.processed_at = hub.now()
        raw.retry_at = hub.now() + policy.delay(raw.attempts)
    log.error("event %s %s after %d attempts", raw.event_id, raw.status, raw.attempts)


def run_batch(session: Session, hub, claimed: list[tuple]) -> BatchResult:
    """``claimed``: [(event, its normalised items)]."""
    result = BatchResult(events=len(claimed))
    if not claimed:
        return result
    config = hub.config
    if hub.pace.get(TEAM) != config["team"]:
        sync_team(session, config["team"])
        result.team = [dict(member) for member in config["team"]]
    events = [raw for raw, _ in claimed]
    work = [(raw, item) for raw, items in claimed for item in items]
    items = [item for _, item in work]
    out = RowWriter(session)
    batch = Batch(hub, session, out, existing_touches(session, [item.touch_key for item in items]),
                  ContactIndex.load(session, [item.lead for item in items if not item.ignore]),
                  thread_index(session, items))
    for raw, item in work:
        batch.apply(raw, item)
    hours = business_hours(config)
    decisions = route_new_leads(session, hub, batch.new_leads, batch.contacts, hours)
    write_new(session, batch.new_leads, batch.new_touches)
    for lead in batch.touched.values():
        session.expire(lead, ["touches"])  # reloaded with the touches just written
    for raw, lead in batch.links:
        raw.lead_id = lead.id
    settle(session, events, hub.now())
    note_events(session, work, events)
    finish_new_leads(session, out, hub, batch.new_leads, decisions, hours, result)
    if batch.touched:
        result.syncs += queue_update(session, batch.touched, hub.now())
    react_to_calls(session, out, hub, batch.call_changes, result)
    out.flush()
    now = hub.now()
    result.latencies = [(now - raw.received_at).total_seconds() for raw in events]
    return result


def settle(session: Session, events: list[RawEvent], now) -> None:
    """Each event processed (it has its lead) or ignored (with the reason)."""
    for raw in events:
        if raw.status == "pending":
            raw.status = "processed" if raw.lead_id else "ignored"
            raw.error = raw.error if raw.lead_id else (raw.error or "no lead in the event")
    execute_many(session.connection(), settled(), [
        {"raw_id": raw.id, "status": raw.status, "error": raw.error, "lead_id": raw.lead_id, "processed_at": now}
        for raw in events])


@functools.cache
def settled():
    table = RawEvent.__table__
    return update(table).where(table.c.id == bindparam("raw_id")).values(
        status=bindparam("status"), error=bindparam("error"), lead_id=bindparam("lead_id"),
        processed_at=bindparam("processed_at"))


def route_new_leads(session: Session, hub, leads: list[NewLead], contacts: ContactIndex, hours) -> list:
    """Score and route before the leads are written, so the score and the owner go in with
    them; routing rules may ask for the score."""
    counters = Counters(session)
    scorer = Scorer.load(session, hub.config) if leads else None
    geography = uses_geography(hub.config) or bool(scorer and scorer.needs_geography)
    decisions = []
    for lead in leads:
        owner = contacts.owner(lead)  # a returning client's earlier manager
        facts = facts_of(lead, hours.is_open(lead.created_at), owner is not None, geography)
        if scorer:
            apply(lead, scorer.score(facts))
            route_facts(facts, lead)
        decision = decide(hub.config, facts, counters, owner)
        lead.assignee_id, lead.assignment_reason = decision.member_id, decision.reason
        lead.routing_rule = decision.rule["name"] if decision.rule else None
        if decision.member_id:
            counters.assigned(decision.member_id)
        decisions.append(decision)
    return decisions


def finish_new_leads(session: Session, out, hub, leads: list[NewLead], decisions: list, hours,
                     result: BatchResult) -> None:
    """The written leads' first task and SLA chain, confirmations and CRM syncs."""
    for lead, decision in zip(leads, decisions, strict=True):
        record_start(out, hub, lead, decision, hours)
        if lead.channel != "call":  # a call's lead is confirmed when its call has ended
            result.notifications += plan_confirmations(session, out, hub, lead)
        result.syncs += plan_syncs(out, hub.config, lead)
        result.new_leads.append(lead.id)


def record_start(out, hub, lead: NewLead, decision, hours) -> None:
    record(out, lead.id, "created", lead.created_at, channel=lead.channel)
    if decision.member_id:
        out.add(Assignment, lead_id=lead.id, member_id=decision.member_id, reason=decision.reason, at=hub.now())
        record(out, lead.id, "assigned", hub.now(), to=decision.member_id, reason=decision.reason)
    sla = sla_of(hub.config, lead)
    if decision.manual:
        request_assignment(out, hub, lead, decision.rule, sla, hours)
        return
    open_first_task(out, hub, lead, sla, hours)
    start_new_chain(out, hub, lead, sla, hours)


def react_to_calls(session: Session, out, hub, changes, result: BatchResult) -> None:
    """A missed call starts the callback ladder, an answered one stops it; a lead made by a
    call is confirmed once its call has ended (the rules may look at ``call_status``)."""
    for change in changes:
        lead, details = change.lead, change.touch.details
        if change.outcome == "missed" and details["direction"] == "inbound":
            start_ladder(session, out, hub, lead, change.at, change.touch.touch_key)
        elif change.outcome == "answered":
            stop_ladder(session, out, hub, lead.id, f"client reached: answered {details['direction']} call")
        if details.get("final") and lead.channel == "call" and first_touch_of(lead, change.touch):
            out.flush()
            already = {(n.rule, n.channel) for n in session.scalars(
                select(Notification).where(Notification.lead_id == lead.id))}
            result.notifications += plan_confirmations(session, out, hub, lead, details["status"], already)


def first_touch_of(lead: Lead | NewLead, touch: Touch | NewTouch) -> bool:
    return touch.touch_key == min((t for t in lead.touches), key=lambda t: t.at).touch_key
