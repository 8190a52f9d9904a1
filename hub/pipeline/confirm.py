"""Confirm: one outbox row per new lead and matching confirmation rule, created in the same
transaction as the lead; sending happens later, from the outbox only (``hub.outbox``)."""
from __future__ import annotations

from sqlalchemy.orm import Session

from hub.models import Lead, Notification

CONTACT_OF = {"sms": "phone", "email": "email"}


def rule_matches(when: dict, lead: Lead) -> bool:
    """Every condition given must hold; a condition lists the accepted values."""
    attributes = {"channel": lead.channel, **(lead.source or {})}
    for key, accepted in (when or {}).items():
        accepted = accepted if isinstance(accepted, list) else [accepted]
        if attributes.get(key) not in accepted:
            return False
    return True


class Template(dict):
    def __missing__(self, key):
        return ""


def render(text: str, lead: Lead, manager: dict | None) -> str:
    values = Template(number=lead.number, name=lead.name or "", phone=lead.phone or "",
                      email=lead.email or "", manager=(manager or {}).get("name") or "",
                      manager_phone=(manager or {}).get("phone") or "")
    return text.format_map(values)


def plan_confirmations(session: Session, config, lead: Lead) -> list[Notification]:
    team = {m["id"]: m for m in config["team"]}
    planned = []
    for index, rule in enumerate(config["confirmations"]):
        contact = getattr(lead, CONTACT_OF[rule["channel"]])
        if not contact or not rule_matches(rule["when"], lead):
            continue
        manager = team.get(lead.assignee_id)
        sender = config["sms"]["sender"] if rule["channel"] == "sms" else config["email"]["sender"]
        planned.append(Notification(
            lead_id=lead.id, rule=rule["name"] or f"confirmations.{index}", channel=rule["channel"],
            sender=sender, to=contact, text=render(rule["text"], lead, manager),
            subject=render(rule["subject"], lead, manager) if rule["channel"] == "email" else None))
    session.add_all(planned)
    return planned
