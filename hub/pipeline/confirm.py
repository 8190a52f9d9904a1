"""Confirm: one outbox row per new lead and matching confirmation rule, created in the same
transaction as the lead; sending happens later, from the outbox only (``hub.outbox``)."""
from __future__ import annotations

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.config.schema import ConfirmationSchema
from hub.mapping import stored_phone
from hub.pipeline.segments import count_segments
from hub.rules.quiet_hours import client_zone, release_time
from hub.store.models import DeliveryStatus, Lead, Notification

CONTACT_OF = {"sms": "phone", "email": "email"}


def is_mobile(phone: str | None) -> bool:
    number = stored_phone(phone)
    return number is not None and phonenumbers.number_type(number) in (
        phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


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


def manager_of(config, lead: Lead) -> dict | None:
    return next((m for m in config["team"] if m["id"] == lead.assignee_id), None)


def render(text: str, lead: Lead, manager: dict | None) -> str:
    values = Template(number=lead.number, name=lead.name or "", phone=lead.phone or "",
                      email=lead.email or "", manager=(manager or {}).get("name") or "",
                      manager_phone=(manager or {}).get("phone") or "")
    return text.format_map(values)


def plan_confirmations(session: Session, out, hub, lead: Lead, call_status: str | None = None,
                       already: set[tuple[str, str]] = frozenset()) -> int:
    """Outbox rows for the rules this lead matches (``already`` holds (rule, channel) pairs
    planned before, for leads whose confirmation waits for the end of their call)."""
    config = hub.config
    manager = manager_of(config, lead)
    planned = []
    for index, rule in enumerate(config["confirmations"]):
        contact = getattr(lead, CONTACT_OF[rule["channel"]])
        name = rule["name"] or f"confirmations.{index}"
        if not contact or (name, rule["channel"]) in already or not rule_matches(rule["when"], lead, call_status):
            continue
        row = {"lead_id": lead.id, "rule": name, "channel": rule["channel"], "reply_to_message_id": None,
               "sender": sender_of(config, rule["channel"]), "to": contact,
               "text": render(rule["text"], lead, manager), "next_attempt_at": hub.now(),
               "subject": render(rule["subject"], lead, manager) if rule["channel"] == "email" else None,
               "status": DeliveryStatus.PENDING, "last_error": None}
        if row["channel"] == "sms":
            shape_sms(hub, row, lead)
        else:
            reply_in_thread(row, lead)
        planned.append(row)
    for row in planned:
        out.add(Notification, **row)
    dead_sms = next((row for row in planned if row["status"] == DeliveryStatus.DEAD), None)
    if dead_sms and not any(row["channel"] == "email" for row in planned):
        planned += [1] if fallback_email(session, out, hub, lead, dead_sms["rule"], dead_sms["text"]) else []
    return len(planned)


def reply_in_thread(row: dict, lead: Lead) -> None:
    """A lead that wrote to us gets its confirmation as a reply to that message; our reply's
    Message-ID (kept by the outbox) then threads the client's answer back to the lead. Mail
    relayed by someone else (a colleague's forward, a site's form notification) is not the
    client's thread: the confirmation starts a new one."""
    mails = [t for t in lead.touches if t.channel == "mail" and (t.details or {}).get("message_id")
             and not t.details.get("relayed_by")]
    if not mails:
        return
    message_id = mails[-1].details["message_id"].strip().strip("<>")
    subject = mails[-1].details.get("subject") or ""
    row["reply_to_message_id"] = f"<{message_id}>"
    if subject:
        row["subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"


def sender_of(config, channel: str) -> str:
    return config["sms"]["sender"] if channel == "sms" else config["email"]["sender"]


def shape_sms(hub, row: dict, lead: Lead) -> None:
    """Hold an SMS until morning in the client's time zone; refuse one longer than allowed."""
    zone = client_zone(lead.phone, hub.config["timezone"])
    row["next_attempt_at"] = release_time(hub.now(), zone, hub.config["sms"]["quiet_hours"])
    encoding, parts = count_segments(row["text"])
    if parts > hub.config["sms"]["max_segments"]:
        row["status"] = DeliveryStatus.DEAD
        row["last_error"] = (f"text is {parts} {encoding} segments, over sms.max_segments "
                             f"({hub.config['sms']['max_segments']})")


def is_confirmation(rule: str) -> bool:
    return not rule.startswith(("reminder:", "escalation:"))


def fallback_email(session: Session, out, hub, lead: Lead, rule: str, text: str) -> bool:
    """An SMS confirmation that failed for good goes out by e-mail, when the lead has one and
    got no e-mail confirmation yet; with the subject configured for that rule."""
    if not is_confirmation(rule) or not lead.email:
        return False
    emails = list(session.scalars(select(Notification.rule).where(
        Notification.lead_id == lead.id, Notification.channel == "email")))
    emails += [row["rule"] for row in out.pending(Notification)
               if row["lead_id"] == lead.id and row["channel"] == "email"]
    if any(is_confirmation(name) for name in emails):
        return False
    manager = manager_of(hub.config, lead)
    row = {"lead_id": lead.id, "rule": f"{rule}:fallback"[:100], "channel": "email", "reply_to_message_id": None,
           "sender": sender_of(hub.config, "email"), "to": lead.email, "text": text,
           "subject": render(configured_subject(hub.config, rule), lead, manager),
           "next_attempt_at": hub.now(), "status": DeliveryStatus.PENDING, "last_error": None}
    reply_in_thread(row, lead)
    out.add(Notification, **row)
    return True


def configured_subject(config, rule: str) -> str:
    """The ``subject`` of the named confirmation rule (every rule has one, by default
    ``ConfirmationSchema``'s); of the first rule when the config no longer names it."""
    rules = config["confirmations"]
    named = [r for index, r in enumerate(rules) if (r["name"] or f"confirmations.{index}") == rule]
    found = named or rules
    return found[0]["subject"] if found else ConfirmationSchema().fields["subject"].load_default
