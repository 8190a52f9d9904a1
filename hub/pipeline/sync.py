"""Sync: the lead is already in the built-in store (this database); each configured external
CRM target gets a delivery row, pushed by ``hub.outbox`` like any other outbound message."""
from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from hub import registry
from hub.store.models import DeliveryStatus, Lead, SyncDelivery


def plan_syncs(out, config, lead: Lead) -> int:
    names = [entry.get("name") or entry["target"] for entry in config["crm"] if registry.has_crm(entry["target"])]
    for name in names:
        out.add(SyncDelivery, lead_id=lead.id, target=name, status=DeliveryStatus.PENDING, attempts=0,
                next_attempt_at=lead.created_at)
    return len(names)


def queue_update(session: Session, lead_ids, now, skip_target: str | None = None) -> int:
    """Leads that changed are pushed again, as updates of the id the CRM gave us: a new
    delivery, so its first attempt mints a new delivery id. A change read back from a CRM
    (``skip_target``) is already there: only the other targets hear of it."""
    query = update(SyncDelivery).where(SyncDelivery.lead_id.in_(list(lead_ids)),
                                       SyncDelivery.status == DeliveryStatus.SYNCED)
    if skip_target:
        query = query.where(SyncDelivery.target != skip_target)
    return session.execute(query.values(status=DeliveryStatus.PENDING, next_attempt_at=now,
                                        delivery_id=None)).rowcount
