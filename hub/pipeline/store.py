"""The leads and touches a batch makes, written with one INSERT per table.

A batch of thousands of events makes thousands of leads and touches. As ORM objects each
would pay for construction, change tracking and the unit of work's flush, which cost more
than parsing the events. The batch builds them as plain records instead; leads already in
the database stay ORM objects (a batch changes few of them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from hub.store.models import Lead, Touch, utcnow
from hub.store.prepared import insert_rows
from hub.store.writer import insert_with_ids

LEAD_COLUMNS = ("status", "name", "phone", "email", "message", "channel", "source", "last_source",
                "assignee_id", "assignment_reason", "created_at", "updated_at", "routing_rule",
                "score_class", "score_probability", "score_value", "score_details")
TOUCH_COLUMNS = ("touch_key", "event_id", "channel", "at", "source", "details")


@dataclass(eq=False)
class NewLead:
    """A lead made by this batch: the columns of ``Lead``, and its touches. ``id`` (the lead
    number) is known once ``write_new`` ran."""

    channel: str
    created_at: datetime
    source: dict[str, Any] = field(default_factory=dict)
    last_source: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    message: str | None = None
    status: str = "new"
    assignee_id: str | None = None
    assignment_reason: str | None = None
    routing_rule: str | None = None
    handled_at: datetime | None = None
    status_changed_at: datetime | None = None
    score_class: str | None = None
    score_probability: float | None = None
    score_value: float | None = None
    score_details: dict[str, Any] | None = None
    updated_at: datetime = field(default_factory=utcnow)
    id: int | None = None
    touches: list[NewTouch] = field(default_factory=list)

    @property
    def number(self) -> int | None:
        return self.id


@dataclass(eq=False)
class NewTouch:
    lead: Any  # a NewLead, or a Lead already stored
    touch_key: str
    event_id: str
    channel: str
    at: datetime
    source: dict[str, Any]
    details: dict[str, Any]

    @property
    def lead_id(self) -> int | None:
        return self.lead.id


def write_new(session: Session, leads: list[NewLead], touches: list[NewTouch]) -> None:
    """Insert the batch's new leads (learning their numbers), then its new touches."""
    connection = session.connection()
    if leads:
        rows = [{column: getattr(lead, column) for column in LEAD_COLUMNS} for lead in leads]
        for lead, lead_id in zip(leads, insert_with_ids(connection, Lead.__table__, rows), strict=True):
            lead.id = lead_id
    if touches:
        rows = [{"lead_id": touch.lead.id} | {column: getattr(touch, column) for column in TOUCH_COLUMNS}
                for touch in touches]
        insert_rows(connection, Touch.__table__, rows)
