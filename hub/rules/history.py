"""The lead's history: one row per thing that happened, with who and why."""
from __future__ import annotations

from hub.store.models import LeadHistory


def record(out, lead_id: int, action: str, at, actor: str = "hub", **details) -> None:
    out.add(LeadHistory, lead_id=lead_id, action=action, actor=actor, at=at, details=details)
