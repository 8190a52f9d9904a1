"""Pushing leads to external CRMs from the sync_deliveries table.

Every configured target gets one row per lead, with the lifecycle of ``hub.delivery.lifecycle``:
claimed (``syncing``), pushed through the target's module with a throttle shared by all
workers, and recorded: ``synced`` with the CRM's id, ``failed`` with a backoff, or ``dead`` with
the CRM's own message. A retry passes the
attempt number, so the target looks for a lead an earlier, timed-out try may have created, and
the row's ``delivery_id`` (random, minted by the first attempt), so a target can name the push
the same way every time. A lead that changes later (new touch, status, owner) is queued again
as an update of the stored id, with a new delivery id.
"""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from connectors.base import SendError
from hub import registry
from hub.config import resolve_secrets
from hub.delivery import serialize
from hub.delivery.lifecycle import Lifecycle
from hub.delivery.throttle import Throttle
from hub.store.models import DeliveryStatus, Lead, SyncDelivery

log = logging.getLogger("hub.crm")
SYNCS = Lifecycle(SyncDelivery, DeliveryStatus.SYNCING, "sync")
STUCK_AFTER = timedelta(minutes=10)


def target_name(entry: dict) -> str:
    return entry.get("name") or entry["target"]


def targets(config) -> dict[str, dict]:
    return {target_name(entry): entry for entry in config["crm"] if registry.has_crm(entry["target"])}


def claim_due(hub, limit: int = 20) -> list[SyncDelivery]:
    return SYNCS.claim_due(hub, limit, prepare=mint_delivery_id)


def mint_delivery_id(row: SyncDelivery) -> None:
    row.delivery_id = row.delivery_id or uuid.uuid4().hex  # kept by the retries


def lead_json(hub, lead_id: int) -> dict:
    with hub.db.read() as session:
        lead = session.scalar(select(Lead).where(Lead.id == lead_id).options(
            selectinload(Lead.touches), selectinload(Lead.tasks), selectinload(Lead.notifications),
            selectinload(Lead.syncs), selectinload(Lead.history)))
        return serialize.lead(lead, hub.config["timezone"], hub.now(), hub.config["sms"]["quiet_hours"])


def make_throttle(hub, name: str, entry: dict, module, clock=None, sleep=None) -> Throttle:
    rate = entry.get("rate") or {}
    per_second = float(rate.get("per_second", module.RATE[0]))
    burst = int(rate.get("burst", module.RATE[1]))
    kwargs = {k: v for k, v in (("clock", clock), ("sleep", sleep)) if v is not None}
    try:
        connection = hub.kicker.connection
    except Exception:  # no Redis at all: local buckets only
        connection = None
    return Throttle(connection, name, per_second, burst, **kwargs)


def push_one(hub, row: SyncDelivery, throttles: dict) -> None:
    entry = targets(hub.config).get(row.target)
    if entry is None:
        SYNCS.record(hub, row.id, status=DeliveryStatus.DEAD,
                     last_error=f"target {row.target!r} is no longer configured")
        return
    module = registry.crm(entry["target"])
    settings = {**resolve_secrets(entry, hub.environ), "team": entry.get("team") or {},
                "delivery_id": row.delivery_id, "last_pushed": (row.pushed or {}).get("hub")}
    lead = lead_json(hub, row.lead_id)
    try:
        external_id = module.push(lead, settings, row.external_id, row.attempts, throttles[row.target])
    except Exception as error:
        if not isinstance(error, SendError):
            log.exception("target %s crashed", row.target)
            error = SendError(f"{type(error).__name__}: {error}")
        values = SYNCS.after_failure(hub, row.attempts, error)
        SYNCS.record(hub, row.id, **values)
        log.warning("sync of lead %s to %s: %s (%s)", row.lead_id, row.target, values["status"], error.message)
        return
    SYNCS.record(hub, row.id, status=DeliveryStatus.SYNCED, external_id=str(external_id), last_error=None,
                 synced_at=hub.now(), attempts=0,
                 pushed=pushed_state(module, lead, settings, row.external_id is None, hub.now()))


def pushed_state(module, lead: dict, settings: dict, created: bool, now) -> dict | None:
    """The stage and user this push sent, and when: a CRM reporting just that back soon after
    is the push's echo (``hub.delivery.crm_readback``)."""
    if not hasattr(module, "sent_state"):
        return None
    return {**module.sent_state(lead, settings, created), "at": now.isoformat()}


def deliver_due(hub, clock=None, sleep=None) -> int:
    attempted, throttles = 0, {}
    configured = targets(hub.config)
    while rows := claim_due(hub):
        for row in rows:
            if row.target not in throttles and row.target in configured:
                entry = configured[row.target]
                throttles[row.target] = make_throttle(hub, row.target, entry, registry.crm(entry["target"]),
                                                      clock, sleep)
            push_one(hub, row, throttles)
        attempted += len(rows)
    return attempted


def recover_stuck(hub) -> int:
    """Rows stuck ``syncing`` (a dead worker) are retried: the retry looks before it creates."""
    with hub.db.write() as session:
        return session.execute(update(SyncDelivery).where(*SYNCS.stuck(hub, STUCK_AFTER)).values(
            status=DeliveryStatus.FAILED, last_error="worker stopped while syncing; retrying")).rowcount


def due_count(hub) -> int:
    return SYNCS.due_count(hub)


def replay(hub, ids: list[int] | None = None, target: str | None = None) -> int:
    """Dead deliveries back in line: all, these ``ids``, or one ``target``'s."""
    where = [SyncDelivery.id.in_(ids)] if ids is not None else []
    where += [SyncDelivery.target == target] if target else []
    return SYNCS.replay(hub, (DeliveryStatus.DEAD,), *where)
