"""Dedupe: the same phone or e-mail as an open lead is a new touch on it, not a new lead."""
from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub.store.models import Lead, Touch

OPEN_STATUSES = ("new", "in_progress")


class ContactIndex:
    """Open leads by contact, loaded once per batch and kept current as the batch adds leads;
    and, from the same rows, the owner of each contact's latest assigned lead, open or not (a
    returning client goes back to the manager who had them)."""

    def __init__(self):
        self._by_key: dict[tuple[str, str], Lead] = {}
        self._owners: dict[tuple[str, str], tuple[str, int]] = {}

    @classmethod
    def load(cls, session: Session, contacts: list[dict]) -> ContactIndex:
        index = cls()
        phones = {c["phone"] for c in contacts if c.get("phone")}
        emails = {c["email"] for c in contacts if c.get("email")}
        if phones or emails:
            clauses = []
            if phones:
                clauses.append(Lead.phone.in_(phones))
            if emails:
                clauses.append(Lead.email.in_(emails))
            # The status is checked here, not in SQL: given both, SQLite (which keeps no
            # statistics) walks every open lead by status instead of the few by contact.
            query = select(Lead).where(or_(*clauses)).order_by(Lead.id)
            for lead in session.scalars(query):
                if lead.status in OPEN_STATUSES:
                    index.add(lead)
                if lead.assignee_id:
                    index.note_owner(lead)
        return index

    def note_owner(self, lead: Lead) -> None:
        for key in contact_keys(lead):
            self._owners[key] = (lead.assignee_id, lead.id)  # rows come by id: the latest stays

    def owner(self, lead) -> tuple[str, int] | None:
        """(member, lead id) of the latest assigned stored lead with this lead's phone, else e-mail."""
        return self._owners.get(("phone", lead.phone)) or self._owners.get(("email", lead.email))

    def add(self, lead: Lead) -> None:
        for key in contact_keys(lead):
            self._by_key.setdefault(key, lead)  # the oldest open lead wins

    def find(self, contact: dict) -> Lead | None:
        for kind in ("phone", "email"):
            value = contact.get(kind)
            if value and (kind, value) in self._by_key:
                return self._by_key[(kind, value)]
        return None


def contact_keys(lead) -> list[tuple[str, str]]:
    return [key for key in (("phone", lead.phone), ("email", lead.email)) if key[1]]


def existing_touches(session: Session, keys: list[str]) -> dict[str, Touch]:
    if not keys:
        return {}
    return {t.touch_key: t for t in session.scalars(select(Touch).where(Touch.touch_key.in_(keys)))}


def merge_contact(lead: Lead, contact: dict) -> None:
    """A later touch fills what the lead did not know yet; it never overwrites."""
    for field in ("name", "phone", "email", "message"):
        if contact.get(field) and not getattr(lead, field):
            setattr(lead, field, contact[field])
