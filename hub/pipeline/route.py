"""Route: give every new lead a responsible manager, and say why."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.models import Assignment, Lead, RouteCounter, TeamMember


def sync_team(session: Session, team: list[dict]) -> None:
    """Mirror the config's team into the database (upsert; people removed become inactive)."""
    existing = {m.id: m for m in session.scalars(select(TeamMember))}
    for entry in team:
        member = existing.pop(entry["id"], None) or TeamMember(id=entry["id"])
        for attr in ("name", "role", "email", "phone", "away", "weight"):
            setattr(member, attr, entry[attr])
        member.active = True
        session.add(member)
    for member in existing.values():
        member.active = False


class RoundRobin:
    """Round-robin positions for the batch, read once and written back once."""

    def __init__(self, session: Session):
        self.session = session
        self.counters: dict[str, RouteCounter] = {}

    def next(self, pool: list[str]) -> tuple[str, int]:
        key = ",".join(pool)
        counter = self.counters.get(key) or self.session.get(RouteCounter, key)
        if counter is None:
            counter = RouteCounter(pool=key, position=0)
            self.session.add(counter)
        self.counters[key] = counter
        position = counter.position
        counter.position = position + 1
        return pool[position % len(pool)], position


def available_managers(team: list[dict]) -> list[str]:
    return sorted(m["id"] for m in team if m["role"] == "manager" and not m["away"])


def assign(session: Session, rr: RoundRobin, lead: Lead, team: list[dict]) -> None:
    pool = available_managers(team)
    if not pool:
        lead.assignment_reason = "no manager available (team has no active manager)"
        return
    member_id, position = rr.next(pool)
    lead.assignee_id = member_id
    lead.assignment_reason = (
        f"no routing rule matched -> round-robin over [{', '.join(pool)}] (turn {position + 1})")
    session.add(Assignment(lead_id=lead.id, member_id=member_id, reason=lead.assignment_reason))
