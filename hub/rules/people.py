"""Who is who in the team config: roles, groups, contacts."""
from __future__ import annotations

from hub.config import ESCALATION_ROLES


def member(config, member_id: str | None) -> dict | None:
    return next((m for m in config["team"] if m["id"] == member_id), None)


def by_role(config, role: str) -> dict | None:
    """The first person with ``role`` who is not away (falling back to one who is)."""
    people = sorted((m for m in config["team"] if m["role"] == role), key=lambda m: (m["away"], m["id"]))
    return people[0] if people else None


def resolve(config, who: str) -> dict | None:
    """A role name or a team member id."""
    return by_role(config, who) if who in ESCALATION_ROLES else member(config, who)


def contact_channel(config, person: dict) -> tuple[str, str, str] | None:
    """How to reach a team member: (channel, sender, address)."""
    if person.get("email"):
        return "email", config["email"]["sender"], person["email"]
    if person.get("phone"):
        return "sms", config["sms"]["sender"], person["phone"]
    return None
