"""The leads list as a table: one row per lead, both touches' attribution beside it."""
from __future__ import annotations

from collections.abc import Iterator
from zoneinfo import ZoneInfo

from sqlalchemy import Select

from hub.mapping import SOURCE_KEYS
from hub.store.models import Lead

LAST_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "referrer", "landing_page")
HEADER = ("number", "created_at", "updated_at", "status", "name", "phone", "email", "message", "channel",
          "assignee", *SOURCE_KEYS, *(f"last_{key}" for key in LAST_KEYS))
SCORE_HEADER = ("class", "probability", "value")  # with a scoring: section
BATCH = 500


def header(scored: bool) -> tuple[str, ...]:
    return (*HEADER, *SCORE_HEADER) if scored else HEADER


def lead_row(lead: Lead, zone: ZoneInfo, scored: bool = False) -> list:
    source, last = lead.source or {}, lead.last_source or {}
    score = [lead.score_class, lead.score_probability, lead.score_value] if scored else []
    return [lead.id, lead.created_at.astimezone(zone), lead.updated_at.astimezone(zone), lead.status,
            lead.name, lead.phone, lead.email, lead.message, lead.channel, lead.assignee_id,
            *(source.get(key) for key in SOURCE_KEYS), *(last.get(key) for key in LAST_KEYS), *score]


def lead_rows(db, statement: Select, timezone: str, scored: bool = False) -> Iterator[list]:
    """The statement's leads, read in batches from one session while the download goes out."""
    zone = ZoneInfo(timezone)
    with db.read() as session:
        for lead in session.scalars(statement.execution_options(yield_per=BATCH)):
            yield lead_row(lead, zone, scored)
