"""Sync: the lead is already in the built-in store (this database); each configured external
CRM target gets a delivery row, pushed by ``hub.outbox`` like any other outbound message."""
from __future__ import annotations

from sqlalchemy.orm import Session

from hub import registry
from hub.models import Lead, SyncDelivery


def plan_syncs(session: Session, config, lead: Lead) -> list[SyncDelivery]:
    rows = [SyncDelivery(lead_id=lead.id, target=target["target"])
            for target in config["crm"] if registry.has_crm(target.get("target", ""))]
    session.add_all(rows)
    return rows
