"""Delivering the outbox: every confirmation leaves from a notification row, exactly once.

The row's lifecycle is ``hub.delivery.lifecycle``'s. What is the outbox's own: SMS quiet hours
hold a row until the morning; a dead SMS confirmation falls back to e-mail; and a row stuck
``sending`` is not sent again blindly (``unknown``) unless its sender takes an idempotency key.
"""
from __future__ import annotations

import logging

from sqlalchemy import update

from connectors.base import Outgoing, PermanentFailure, SendError
from hub import registry
from hub.config import resolve_secrets
from hub.delivery.lifecycle import Lifecycle
from hub.pipeline.confirm import fallback_email
from hub.rules.quiet_hours import client_zone, release_time
from hub.store.models import DeliveryStatus, Lead, Notification
from hub.store.writer import RowWriter

log = logging.getLogger("hub.outbox")
NOTIFICATIONS = Lifecycle(Notification, DeliveryStatus.SENDING, "outbox")


def sender_settings(hub, channel: str, sender: str, module) -> dict:
    """A sender's config section, secrets resolved; a sender that takes its settings from the
    environment (a file to write to) names the variable per channel instead."""
    variables = getattr(module, "SETTINGS_FROM_ENV", None)
    if variables:
        return {"path": hub.environ.get(variables[channel])}
    section = hub.config["sms"] if channel == "sms" else hub.config["email"]
    return resolve_secrets(section.get(sender) or {}, hub.environ)


def claim_due(hub, limit: int = 50) -> list[Notification]:
    return NOTIFICATIONS.claim_due(hub, limit)


def send_one(hub, row: Notification) -> None:
    """Whatever goes wrong, the row leaves ``sending``: sent, held, failed or dead."""
    try:
        if row.channel == "sms" and hold_for_quiet_hours(hub, row):
            return
        sent = hand_to_sender(hub, row)
    except SendError as exc:
        record_failure(hub, row, exc)
        return
    except Exception as exc:  # a sender bug: keep the row, never lose the message
        log.exception("sender %s crashed", row.sender)
        record_failure(hub, row, SendError(f"{type(exc).__name__}: {exc}"))
        return
    NOTIFICATIONS.record(hub, row.id, status=DeliveryStatus.SENT, sent_at=hub.now(),
                         provider_message_id=sent.provider_message_id, last_error=None)


def hand_to_sender(hub, row: Notification):
    module = registry.SENDERS.get((row.channel, row.sender))
    if module is None:
        raise PermanentFailure(f"no {row.channel} sender called {row.sender!r}")
    message = Outgoing(channel=row.channel, to=row.to, text=row.text, subject=row.subject,
                       idempotency_key=f"lead-{row.lead_id}-notification-{row.id}",
                       reply_to_message_id=row.reply_to_message_id,
                       meta={"date": hub.now()})  # an e-mail's Date: the hub's clock
    return module.send(message, sender_settings(hub, row.channel, row.sender, module))


def hold_for_quiet_hours(hub, row: Notification) -> bool:
    """A retry that would now arrive at night waits for the morning (the try is not counted)."""
    with hub.db.write() as session:
        lead = session.get(Lead, row.lead_id) if row.lead_id else None
        zone = client_zone(lead.phone if lead else row.to, hub.config["timezone"])
        release = release_time(hub.now(), zone, hub.config["sms"]["quiet_hours"])
        if release <= hub.now():
            return False
        session.execute(update(Notification).where(Notification.id == row.id).values(
            status=DeliveryStatus.PENDING, attempts=row.attempts - 1, next_attempt_at=release))
    return True


def record_failure(hub, row: Notification, error: SendError) -> None:
    values = NOTIFICATIONS.after_failure(hub, row.attempts, error)
    status = values["status"]
    with hub.db.write() as session:
        session.execute(update(Notification).where(Notification.id == row.id).values(**values))
        lead = session.get(Lead, row.lead_id) if row.lead_id else None  # None: a message to the team
        out = RowWriter(session)
        fell_back = (status == DeliveryStatus.DEAD and row.channel == "sms" and lead is not None
                     and fallback_email(session, out, hub, lead, row.rule, row.text))
        out.flush()
    if fell_back:
        hub.kicker.kick("outbox")
    log.warning("notification %s to %s: %s (%s)", row.id, row.channel, values["status"], error.message)


def deliver_due(hub, limit: int = 50) -> int:
    """Send every due notification; returns how many were attempted."""
    attempted = 0
    while rows := claim_due(hub, limit):
        for row in rows:
            send_one(hub, row)
        attempted += len(rows)
    return attempted


def mark_stuck(hub) -> int:
    """Rows stuck ``sending``: the worker died mid-send. A sender whose provider takes an
    idempotency key is simply retried; for the others whether the provider got the message is
    unknown, so the row is not resent automatically."""
    stuck = NOTIFICATIONS.stuck(hub, hub.config["outbox"]["sending_timeout"])
    safe = sorted({name for (_, name), module in registry.SENDERS.items() if getattr(module, "IDEMPOTENT", False)})
    with hub.db.write() as session:
        retried = session.execute(update(Notification).where(*stuck, Notification.sender.in_(safe)).values(
            status=DeliveryStatus.FAILED, next_attempt_at=hub.now(),
            last_error="worker stopped while sending; retried with the same idempotency key")).rowcount
        unknown = session.execute(update(Notification).where(*stuck).values(
            status=DeliveryStatus.UNKNOWN,
            last_error="worker stopped while sending; not resent automatically to avoid a duplicate")).rowcount
        return retried + unknown


def due_count(hub) -> int:
    return NOTIFICATIONS.due_count(hub)


def replay(hub, statuses=(DeliveryStatus.DEAD, DeliveryStatus.UNKNOWN), ids: list[int] | None = None,
           channel: str | None = None) -> int:
    """Put dead (or unknown) notifications back into the outbox: all, these ``ids``, or one
    ``channel``'s."""
    where = [Notification.id.in_(ids)] if ids is not None else []
    where += [Notification.channel == channel] if channel else []
    return NOTIFICATIONS.replay(hub, statuses, *where)
