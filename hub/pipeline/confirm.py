"""Confirm: one outbox row per new lead and matching confirmation rule, created in the same
transaction as the lead; sending happens later, from the outbox only (``hub.outbox``)."""
from __future__ import annotations

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.rules.quiet_hours import client_zone, release_time
from hub.segments import count_segments

from hub.models import Lead, Notification

CONTACT_OF = {"sms": "phone", "email": "email"}


def is_mobile(phone: str | None) -> bool:
    if not phone:
        return False
    try:
        kind = phonenumbers.number_type(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return False
    return kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def rule_matches(when: dict, lead: Lead, call_status: str | None = None) -> bool:
    """Every condition given must hold; a condition lists the accepted values (``mobile`` is
    true or false)."""
    attributes = {"channel": lead.channel, **(lead.source or {}), "call_status": call_status}
    for key, accepted in (when or {}).items():
        if key == "mobile":
            if is_mobile(lead.phone) is not accepted:
                return False
            continue
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


def plan_confirmations(session: Session, hub, lead: Lead, call_status: str | None = None,
                       already: set[tuple[str, str]] = frozenset()) -> list[Notification]:
    """Outbox rows for the rules this lead matches (``already`` holds (rule, channel) pairs
    planned before, for leads whose confirmation waits for the end of their call)."""
    config = hub.config
    team = {m["id"]: m for m in config["team"]}
    planned = []
    for index, rule in enumerate(config["confirmations"]):
        contact = getattr(lead, CONTACT_OF[rule["channel"]])
        name = rule["name"] or f"confirmations.{index}"
        if not contact or (name, rule["channel"]) in already or not rule_matches(rule["when"], lead, call_status):
            continue
        manager = team.get(lead.assignee_id)
        row = Notification(
            lead_id=lead.id, rule=name, channel=rule["channel"], sender=sender_of(config, rule["channel"]),
            to=contact, text=render(rule["text"], lead, manager), next_attempt_at=hub.now(),
            subject=render(rule["subject"], lead, manager) if rule["channel"] == "email" else None)
        if row.channel == "sms":
            shape_sms(hub, row, lead)
        planned.append(row)
    session.add_all(planned)
    if any(row.status == "dead" for row in planned) and not any(row.channel == "email" for row in planned):
        planned += [row for row in (fallback_email(session, hub, lead, dead) for dead in planned
                                    if dead.status == "dead") if row is not None][:1]
    return planned


def is_confirmation(rule: str) -> bool:
    return not rule.startswith(("reminder:", "escalation:"))


def fallback_email(session: Session, hub, lead: Lead, failed: Notification) -> Notification | None:
    """An SMS confirmation that failed for good goes out by e-mail, when the lead has one and
    got no e-mail confirmation yet."""
    if failed.channel != "sms" or not is_confirmation(failed.rule) or not lead.email:
        return None
    emails = session.scalars(select(Notification.rule).where(
        Notification.lead_id == lead.id, Notification.channel == "email"))
    if any(is_confirmation(rule) for rule in emails):
        return None
    row = Notification(lead_id=lead.id, rule=f"{failed.rule}:fallback"[:100], channel="email",
                       sender=sender_of(hub.config, "email"), to=lead.email, text=failed.text,
                       subject=f"Ваша заявка №{lead.number}", next_attempt_at=hub.now())
    session.add(row)
    return row


def sender_of(config, channel: str) -> str:
    return config["sms"]["sender"] if channel == "sms" else config["email"]["sender"]


def shape_sms(hub, row: Notification, lead: Lead) -> None:
    """Hold an SMS until morning in the client's time zone; refuse one longer than allowed."""
    zone = client_zone(lead.phone, hub.config["timezone"])
    row.next_attempt_at = release_time(hub.now(), zone, hub.config["sms"]["quiet_hours"])
    encoding, parts = count_segments(row.text)
    if parts > hub.config["sms"]["max_segments"]:
        row.status = "dead"
        row.last_error = (f"text is {parts} {encoding} segments, over sms.max_segments "
                          f"({hub.config['sms']['max_segments']})")
