"""CRM changes back into the hub: what managers do in a CRM reaches the lead.

Two ways in, one way to apply:

* webhooks: ``/hooks/crm/<target>`` stores each event raw (the intake spine, kind ``crm``);
  ``drain`` claims pending ones, reads each lead back through the target's throttle (the
  one its pushes take, shared by every worker), outside any transaction, then applies it;
* polling: every ``poll_every``, ``poll_due`` asks each target for leads changed since its
  checkpoint (table ``checkpoints``, source ``crm:<target>``) and applies each page in one
  transaction with the checkpoint that covers it.

Applying compares the CRM's lead with the last state read for that lead and target
(``sync_deliveries.readback``). Only a newer state counts, so one change arriving by webhook
and by poll, or taken by two workers, applies once. A state that shows what the hub itself
pushed there, modified within ``echo_window`` of that push, is the push's echo: recorded,
nothing more. A lead deleted in the CRM is archived; anything else is a manager action
(``hub.pipeline.manager_actions``). Leads the hub did not push are acknowledged and left alone.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.base import ConnectorError, CrmLead, SendError
from hub import registry, retry
from hub.config import resolve_secrets
from hub.delivery.crm import make_throttle, target_name
from hub.pipeline import CRM_KIND, manager_actions
from hub.pipeline.normalise import inbound_of
from hub.rules import history, stages
from hub.store.models import Checkpoint, DeliveryStatus, Lead, RawEvent, SyncDelivery
from hub.store.writer import RowWriter

log = logging.getLogger("hub.crm")
KIND = CRM_KIND  # raw events of CRM webhooks: not leads, so not the lead pipeline's
LEASE = timedelta(minutes=5)  # a claimed event whose worker died is taken again after this
DEFER = timedelta(seconds=30)  # an event about a lead whose push is in flight waits this long
POLL_OVERLAP = timedelta(minutes=1)  # changes committed late, in the checkpoint's own second


@dataclass(frozen=True)
class Target:
    name: str
    entry: dict
    module: ModuleType
    settings: dict
    team_back: dict[str, str]  # CRM user id -> team id: the target's ``team`` map read backwards


def targets(hub) -> dict[str, Target]:
    """The configured targets whose CRM reports changes back."""
    members = {member["id"] for member in hub.config["team"]}
    found = {}
    for entry in hub.config["crm"]:
        module = registry.crm(entry["target"]) if registry.has_crm(entry["target"]) else None
        if module is None or not hasattr(module, "read_back"):
            continue
        team = entry.get("team") or {}
        settings = {**resolve_secrets(entry, hub.environ), "team": team}
        team_back = {str(user): member for member, user in team.items() if member in members}
        found[target_name(entry)] = Target(target_name(entry), entry, module, settings, team_back)
    return found


# --- webhooks ------------------------------------------------------------------------------


def drain(hub, clock=None, sleep=None, limit: int = 20, ids: list[int] | None = None) -> int:
    """Work off the pending CRM events (only ``ids``, when given); returns how many were taken."""
    taken, throttles = 0, {}
    if ids == []:
        return 0
    if ids is None:
        hub.db.file_intake()  # CRM events that came in since are in the intake journal
    while events := claim(hub, limit, ids):
        for raw in events:
            try:
                handle(hub, raw, throttles, clock, sleep)
            except Exception as error:
                log.exception("CRM event %s could not be handled", raw.event_id)
                fail(hub, raw, error)
        taken += len(events)
    return taken


def claim(hub, limit: int, ids: list[int] | None = None) -> list[RawEvent]:
    """Pending CRM events nobody holds, held for ``LEASE`` (another worker skips them)."""
    now = hub.now()
    with hub.db.write() as session:
        query = (select(RawEvent).where(RawEvent.kind == KIND, RawEvent.status == "pending",
                                        or_(RawEvent.retry_at.is_(None), RawEvent.retry_at <= now))
                 .order_by(RawEvent.id).limit(limit))
        if ids is not None:
            query = query.where(RawEvent.id.in_(ids))
        if session.bind.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        events = list(session.scalars(query))
        for raw in events:
            raw.retry_at, raw.attempts = now + LEASE, raw.attempts + 1
        return events


def handle(hub, raw: RawEvent, throttles: dict, clock=None, sleep=None) -> None:
    """Reads back the leads the event names (those the hub pushed), then applies them."""
    target = targets(hub).get(raw.endpoint)
    if target is None:
        settle(hub, raw, "ignored", None, f"CRM target {raw.endpoint!r} is no longer configured")
        return
    if target.name not in throttles:
        throttles[target.name] = make_throttle(hub, target.name, target.entry, target.module, clock, sleep)
    try:
        events = [item.extra["crm"] for item in target.module.parse(inbound_of(raw), target.settings)
                  if not item.ignore and "crm" in item.extra]
        known = known_ids(hub, target.name, [event.external_id for event in events])
        leads = [target.module.read_back(event, target.settings, throttles[target.name])
                 for event in events if event.external_id in known]
    except (SendError, ConnectorError) as error:
        fail(hub, raw, error)
        return
    apply_event(hub, raw, target, leads, [event.external_id for event in events if event.external_id not in known])


def known_ids(hub, target: str, external_ids: list[str]) -> set[str]:
    """The CRM ids the hub pushed to ``target``: only those are read back."""
    if not external_ids:
        return set()
    with hub.db.read() as session:
        return set(session.scalars(select(SyncDelivery.external_id).where(
            SyncDelivery.target == target, SyncDelivery.external_id.in_(external_ids))))


def apply_event(hub, raw: RawEvent, target: Target, leads: list[CrmLead], unknown: list[str]) -> None:
    with hub.db.write() as session:
        outcomes = [apply(session, hub, target, lead, "webhook") for lead in leads]
        if any(outcome.deferred for outcome in outcomes):
            defer(session, hub, raw)
            return
        lead_id = next((outcome.lead_id for outcome in outcomes if outcome.lead_id), None)
        if lead_id:
            settle_in(session, hub, raw, "processed", lead_id, None)
        else:
            notes = [f"CRM lead {o.external_id}: {o.note}" for o in outcomes]
            notes += [f"CRM lead {external_id}: not a lead the hub pushed" for external_id in unknown]
            settle_in(session, hub, raw, "ignored", None, "; ".join(notes) or "no lead in the event")


def defer(session: Session, hub, raw: RawEvent) -> None:
    """A push of that lead is in flight: its echo can be told only once it is recorded."""
    stored = session.get(RawEvent, raw.id)
    stored.retry_at, stored.attempts = hub.now() + DEFER, max(0, stored.attempts - 1)


def settle(hub, raw: RawEvent, status: str, lead_id: int | None, note: str | None) -> None:
    with hub.db.write() as session:
        settle_in(session, hub, raw, status, lead_id, note)


def settle_in(session: Session, hub, raw: RawEvent, status: str, lead_id: int | None, note: str | None) -> None:
    stored = session.get(RawEvent, raw.id)
    stored.status, stored.lead_id, stored.error = status, lead_id, note
    stored.processed_at, stored.retry_at = hub.now(), None


def fail(hub, raw: RawEvent, error: Exception) -> None:
    """A read-back the CRM refused: retried with the events' backoff, then dead."""
    message = getattr(error, "message", str(error))
    policy = retry.for_events(hub.config["pipeline"])
    with hub.db.write() as session:
        stored = session.get(RawEvent, raw.id)
        dead = getattr(error, "permanent", False) or policy.exhausted(stored.attempts)
        stored.status, stored.error, stored.processed_at = ("dead" if dead else "failed"), message[:4000], hub.now()
        stored.retry_at = hub.now() + policy.delay(stored.attempts, getattr(error, "retry_after", None))
    log.warning("CRM event %s from %s: %s (%s)", raw.event_id, raw.endpoint, stored.status, message)


def events_due(hub, older_than: timedelta = timedelta(0)) -> bool:
    """Pending CRM events a worker may take now, received ``older_than`` ago or earlier (the
    sweeper's look for events whose wake-up call was lost)."""
    now = hub.now()
    with hub.db.read() as session:
        return session.scalar(select(RawEvent.id).where(
            RawEvent.kind == KIND, RawEvent.status == "pending", RawEvent.received_at <= now - older_than,
            or_(RawEvent.retry_at.is_(None), RawEvent.retry_at <= now)).limit(1)) is not None


# --- applying one CRM lead -----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    external_id: str
    lead_id: int | None
    note: str
    deferred: bool = False


def apply(session: Session, hub, target: Target, crm_lead: CrmLead, via: str) -> Outcome:
    row = sync_row(session, target.name, crm_lead.external_id)
    if row is None:
        return Outcome(crm_lead.external_id, None, "not a lead the hub pushed")
    if row.status == DeliveryStatus.SYNCING:
        return Outcome(crm_lead.external_id, row.lead_id, "a push is in flight", deferred=True)
    if not newer(crm_lead, row.readback):
        return Outcome(crm_lead.external_id, row.lead_id, "already applied")
    lead = session.get(Lead, row.lead_id)
    verdict, mapped = judge(session, hub, target, row, lead, crm_lead)
    row.readback = snapshot(crm_lead, via, verdict, mapped, hub.now())
    return Outcome(crm_lead.external_id, row.lead_id, verdict)


def sync_row(session: Session, target: str, external_id: str) -> SyncDelivery | None:
    query = select(SyncDelivery).where(SyncDelivery.target == target, SyncDelivery.external_id == external_id)
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update()  # two workers with the same lead: one after the other
    return session.scalars(query.order_by(SyncDelivery.id).limit(1)).first()


def newer(crm_lead: CrmLead, seen: dict | None) -> bool:
    """Whether this state of the lead comes after the one last read; equal times with other
    values count as newer (a CRM's clock has seconds), a deletion is final."""
    if not seen:
        return True
    if seen.get("deleted") or crm_lead.deleted:
        return crm_lead.deleted and not seen.get("deleted")
    seen_at = moment(seen.get("modified_at"))
    if crm_lead.modified_at and seen_at and crm_lead.modified_at != seen_at:
        return crm_lead.modified_at > seen_at
    return (crm_lead.status, crm_lead.user) != (seen.get("status"), seen.get("user"))


def judge(session: Session, hub, target: Target, row: SyncDelivery, lead: Lead, crm_lead: CrmLead):
    """What the state means and what the hub did about it: archived, echo or manager action."""
    actor = actor_of(target, crm_lead)
    if crm_lead.deleted:
        row.status = DeliveryStatus.DELETED  # never pushed to again
        reason = f"deleted in crm:{target.name}"
        manager_actions.act(session, hub, lead, manager_actions.Action(
            actor=actor, status="archived", outcome=reason, origin=target.name, reason=reason))
        return "archived", {}
    mapped = map_back(target, crm_lead)
    if is_echo(row.pushed, crm_lead, mapped, target.entry["echo_window"]):
        return "echo", mapped
    stage = usable_stage(hub, target, lead, crm_lead, mapped)
    record_unmapped(session, hub, target, lead, crm_lead, mapped, actor)
    status = mapped.get("status") if mapped.get("status") != lead.status and not stage else None
    manager_actions.act(session, hub, lead, manager_actions.Action(
        actor=actor, status=status, assignee=mapped.get("assignee"), origin=target.name, stage=stage,
        outcome=f"crm:{crm_lead.status}" if status or stage else None))
    # the CRM has these now: the next push to it sends only what moves after them
    row.pushed = {**(row.pushed or {}), "hub": {"status": lead.status, "assignee": lead.assignee_id,
                                                "stage": lead.stage}}
    return "applied", mapped


def map_back(target: Target, crm_lead: CrmLead) -> dict:
    """The hub's status, pipeline stage and assignee the CRM's stage and user mean (absent:
    unmapped). A CRM stage mapped to a pipeline stage (``stage_ids``) means ``in_progress``."""
    stage = target.module.hub_stage(crm_lead, target.settings) if hasattr(target.module, "hub_stage") else None
    mapped = {"status": target.module.hub_status(crm_lead, target.settings) or ("in_progress" if stage else None),
              "stage": stage, "assignee": target.team_back.get(crm_lead.user or "")}
    return {key: value for key, value in mapped.items() if value}


def usable_stage(hub, target: Target, lead: Lead, crm_lead: CrmLead, mapped: dict) -> str | None:
    """The mapped stage to move the lead to: one of its pipeline's, and not where it is. A stage
    its pipeline lacks counts as unmapped (``record_unmapped``): the lead stays where it is."""
    stage = mapped.get("stage")
    if stage and stage not in stages.stage_names(hub.config, stages.pipeline_for(hub.config, lead)):
        del mapped["stage"]
        if target.module.hub_status(crm_lead, target.settings) is None:
            mapped.pop("status", None)  # it stood for that stage only
        return None
    return stage if stage != lead.stage else None


def is_echo(pushed: dict | None, crm_lead: CrmLead, mapped: dict, window: timedelta) -> bool:
    """The CRM, changed no later than ``window`` after the hub's last push, shows nothing the
    hub did not have then: the hub's own write coming back. A stage or user that means
    something else is a manager's change, however soon after the push it came."""
    if not pushed or crm_lead.modified_at is None:
        return False
    if crm_lead.modified_at > moment(pushed["at"]) + window:
        return False
    if "hub" in pushed:
        return all(mapped.get(key) in (None, value) for key, value in pushed["hub"].items())
    shown = {"status": crm_lead.status, "user": crm_lead.user}  # rows pushed before "hub" was kept
    return all(pushed.get(key) in (None, value) for key, value in shown.items())


def record_unmapped(session: Session, hub, target: Target, lead: Lead, crm_lead: CrmLead, mapped: dict,
                    actor: str) -> None:
    """A stage or user the config does not map is kept on the lead and logged, never guessed."""
    unmapped = {key: value for key, value in (("status", crm_lead.status), ("user", crm_lead.user))
                if value and not mapped.get("assignee" if key == "user" else key)}
    if unmapped:
        out = RowWriter(session)
        history.record(out, lead.id, "crm_unmapped", hub.now(), actor=actor, target=target.name, **unmapped)
        out.flush()
        log.warning("lead %s: crm:%s sent %s, which the config does not map; left as it is",
                    lead.id, target.name, ", ".join(f"{k} {v}" for k, v in unmapped.items()))


def actor_of(target: Target, crm_lead: CrmLead) -> str:
    """``crm:bitrix24 user 17 (anna)``: the target, the CRM user, and who that is here."""
    actor = f"crm:{target.name}"
    if crm_lead.modified_by:
        member = target.team_back.get(crm_lead.modified_by)
        actor += f" user {crm_lead.modified_by}" + (f" ({member})" if member else "")
    return actor[:64]


def snapshot(crm_lead: CrmLead, via: str, verdict: str, mapped: dict, now: datetime) -> dict:
    return {"external_id": crm_lead.external_id, "status": crm_lead.status, "semantic": crm_lead.semantic,
            "user": crm_lead.user, "modified_at": iso(crm_lead.modified_at), "modified_by": crm_lead.modified_by,
            "deleted": crm_lead.deleted, "hub_status": mapped.get("status"), "hub_stage": mapped.get("stage"),
            "assignee": mapped.get("assignee"),
            "outcome": verdict, "via": via, "read_at": iso(now)}


def moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


# --- polling -------------------------------------------------------------------------------


def polling(hub) -> list[Target]:
    return [target for target in targets(hub).values() if target.entry.get("poll_every")]


def source(target: Target) -> str:
    return f"crm:{target.name}"


def polls_due(hub) -> bool:
    targets_ = polling(hub)
    if not targets_:
        return False
    with hub.db.read() as session:
        rows = {row.source: row for row in session.scalars(select(Checkpoint).where(
            Checkpoint.source.in_([source(target) for target in targets_])))}
    return any(poll_is_due(rows.get(source(target)), target, hub.now()) for target in targets_)


def poll_is_due(row: Checkpoint | None, target: Target, now: datetime) -> bool:
    return row is None or row.updated_at + target.entry["poll_every"] <= now


def poll_due(hub, clock=None, sleep=None) -> int:
    """Poll each target whose turn it is; returns how many CRM changes were applied."""
    applied = 0
    for target in polling(hub):
        since = claim_poll(hub, target)
        if since is not None:
            throttle = make_throttle(hub, target.name, target.entry, target.module, clock, sleep)
            applied += poll(hub, target, since, throttle)
    return applied


def claim_poll(hub, target: Target) -> datetime | None:
    """The checkpoint to poll from, when it is this target's turn (the turn is taken: a second
    worker skips it); ``None`` otherwise. A first poll looks back one interval."""
    now = hub.now()
    try:
        with hub.db.write() as session:
            row = checkpoint(session, target)
            if row.id is not None and not poll_is_due(row, target, now):
                return None
            row.updated_at = now
            session.flush()
            return from_unix(row.last_uid) if row.last_uid else now - target.entry["poll_every"]
    except IntegrityError:  # another worker made the row at the same moment: its turn
        return None


def checkpoint(session: Session, target: Target) -> Checkpoint:
    query = select(Checkpoint).where(Checkpoint.source == source(target), Checkpoint.folder == "leads")
    row = session.scalar(query.with_for_update())
    if row is None:
        row = Checkpoint(source=source(target), folder="leads", last_uid=0, consecutive_errors=0, behind=0)
        session.add(row)
    return row


def poll(hub, target: Target, since: datetime, throttle) -> int:
    """Applies the changes page by page, each page with the checkpoint that covers it."""
    mark, hold, applied = since, None, 0
    try:
        for page in target.module.changed_since(target.settings, since - POLL_OVERLAP, throttle):
            with hub.db.write() as session:
                outcomes = [apply(session, hub, target, lead, "poll") for lead in page]
                mark, hold = advance(mark, hold, page, outcomes)
                save_checkpoint(session, hub, target, mark, hold)
            applied += sum(outcome.note in ("applied", "archived") for outcome in outcomes)
    except SendError as error:
        record_poll(hub, target, error.message)
        log.warning("polling crm:%s: %s", target.name, error.message)
        return applied
    record_poll(hub, target, None)
    return applied


def advance(mark: datetime, hold: datetime | None, page: list[CrmLead], outcomes: list[Outcome]):
    """The newest change applied, and the oldest one deferred (a push in flight), which the
    checkpoint must not pass: the next poll reads it again."""
    for crm_lead, outcome in zip(page, outcomes, strict=True):
        if crm_lead.modified_at is None:
            continue
        if outcome.deferred:
            hold = min(hold or crm_lead.modified_at, crm_lead.modified_at)
        else:
            mark = max(mark, crm_lead.modified_at)
    return mark, hold


def save_checkpoint(session: Session, hub, target: Target, mark: datetime, hold: datetime | None) -> None:
    row = checkpoint(session, target)
    kept = min(mark, hold - timedelta(seconds=1)) if hold else mark
    row.last_uid, row.updated_at = int(kept.timestamp()), hub.now()


def record_poll(hub, target: Target, error: str | None) -> None:
    with hub.db.write() as session:
        row = checkpoint(session, target)
        row.updated_at, row.last_error = hub.now(), error[:2000] if error else None
        row.consecutive_errors = (row.consecutive_errors or 0) + 1 if error else 0
        if not error:
            row.last_success_at = hub.now()


def from_unix(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --- connecting a CRM ----------------------------------------------------------------------


def connect(hub, name: str) -> list[str]:
    """Registers the target's events in the CRM, or says what to set there by hand."""
    target = targets(hub).get(name)
    if target is None:
        names = ", ".join(sorted(targets(hub))) or "none"
        raise LookupError(f"no CRM target {name!r} that reports changes back (configured: {names})")
    base = hub.config.get("public_url")
    if not base:
        raise LookupError("set public_url: the CRM calls the hub at <public_url>/hooks/crm/<target>")
    throttle = make_throttle(hub, target.name, target.entry, target.module)
    return target.module.connect(target.settings, f"{base.rstrip('/')}/hooks/crm/{name}", throttle)
