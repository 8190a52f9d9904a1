"""Delivering the outbox: every confirmation leaves from a notification row, exactly once.

A row is claimed (``sending``, attempts + 1) in one transaction, sent outside any transaction,
and the outcome recorded in another. Temporary failures retry with exponential backoff and
jitter; permanent ones and the last retry end ``dead``. A row left ``sending`` by a killed
worker is not sent again blindly: it becomes ``unknown`` for an operator to look at.
"""
from __future__ import annotations

import logging

from sqlalchemy import or_, select, update

from connectors.base import Ambiguous, Outgoing, PermanentFailure, SendError
from hub import registry
from hub.config import resolve_secrets
from hub.retry import RetryPolicy
from hub.store.models import Lead, Notification
from hub.pipeline.confirm import fallback_email
from hub.rules.quiet_hours import client_zone, release_time
from hub.store.writer import RowWriter

log = logging.getLogger("hub.outbox")
RETRYABLE = ("pending", "failed")


def sender_settings(hub, channel: str, sender: str) -> dict:
    if sender == "log":
        variable = "HUB_SMS_LOG" if channel == "sms" else "HUB_MAIL_LOG"
        return {"path": hub.environ.get(variable)}
    section = hub.config["sms"] if channel == "sms" else hub.config["email"]
    return resolve_secrets(section.get(sender) or {}, hub.environ)


def claim_due(hub, limit: int = 50) -> list[Notification]:
    now = hub.now()
    with hub.db.write() as session:
        query = (select(Notification)
                 .where(Notification.status.in_(RETRYABLE), Notification.next_attempt_at <= now)
                 .order_by(Notification.next_attempt_at).limit(limit))
        if session.bind.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(session.scalars(query))
        for row in rows:
            row.status, row.attempts = "sending", row.attempts + 1
            row.next_attempt_at = now
        return rows


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
    with hub.db.write() as session:
        session.execute(update(Notification).where(Notification.id == row.id).values(
            status="sent", sent_at=hub.now(), provider_message_id=sent.provider_message_id,
            last_error=None))


def hand_to_sender(hub, row: Notification):
    module = registry.SENDERS.get((row.channel, row.sender))
    if module is None:
        raise PermanentFailure(f"no {row.channel} sender called {row.sender!r}")
    message = Outgoing(channel=row.channel, to=row.to, text=row.text, subject=row.subject,
                       idempotency_key=f"lead-{row.lead_id}-notification-{row.id}",
                       reply_to_message_id=row.reply_to_message_id,
                       meta={"date": hub.now()})  # an e-mail's Date: the hub's clock
    return module.send(message, sender_settings(hub, row.channel, row.sender))


def hold_for_quiet_hours(hub, row: Notification) -> bool:
    """A retry that would now arrive at night waits for the morning (the try is not counted)."""
    with hub.db.write() as session:
        lead = session.get(Lead, row.lead_id) if row.lead_id else None
        zone = client_zone(lead.phone if lead else row.to, hub.config["timezone"])
        release = release_time(hub.now(), zone, hub.config["sms"]["quiet_hours"])
        if release <= hub.now():
            return False
        session.execute(update(Notification).where(Notification.id == row.id).values(
            status="pending", attempts=row.attempts - 1, next_attempt_at=release))
    return True


def record_failure(hub, row: Notification, error: SendError) -> None:
    policy = RetryPolicy.of(hub.config["outbox"])
    dead = error.permanent or policy.exhausted(row.attempts)
    status = "unknown" if isinstance(error, Ambiguous) else "dead" if dead else "failed"
    values = {"status": status, "last_error": error.message[:2000]}
    if not dead:
        values["next_attempt_at"] = hub.now() + policy.delay(row.attempts, error.retry_after)
    with hub.db.write() as session:
        session.execute(update(Notification).where(Notification.id == row.id).values(**values))
        lead = session.get(Lead, row.lead_id) if row.lead_id else None  # None: a message to the team
        out = RowWriter(session)
        fell_back = (status == "dead" and row.channel == "sms" and lead is not None
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
    """Rows left ``sending`` past the timeout: the worker died mid-send. A sender whose provider
    takes an idempotency key is simply retried; for the others whether the provider got the
    message is unknown, so the row is not resent automatically."""
    timeout = hub.config["outbox"]["sending_timeout"]
    safe = sorted({name for (_, name), module in registry.SENDERS.items() if getattr(module, "IDEMPOTENT", False)})
    stuck = (Notification.status == "sending", Notification.next_attempt_at < hub.now() - timeout)
    with hub.db.write() as session:
        retried = session.execute(update(Notification).where(*stuck, Notification.sender.in_(safe)).values(
            status="failed", next_attempt_at=hub.now(),
            last_error="worker stopped while sending; retried with the same idempotency key")).rowcount
        unknown = session.execute(update(Notification).where(*stuck).values(
            status="unknown",
            last_error="worker stopped while sending; not resent automatically to avoid a duplicate")).rowcount
        return retried + unknown


def due_count(hub) -> int:
    from sqlalchemy import func

    with hub.db.read() as session:
        return session.scalar(select(func.count()).select_from(Notification).where(
            Notification.status.in_(RETRYABLE), Notification.next_attempt_at <= hub.now())) or 0


def replay(hub, statuses=("dead", "unknown"), ids: list[int] | None = None, channel: str | None = None) -> int:
    """Put dead (or unknown) notifications back into the outbox: all, these ``ids``, or one
    ``channel``'s."""
    query = update(Notification).where(or_(*[Notification.status == s for s in statuses]))
    if ids is not None:
        query = query.where(Notification.id.in_(ids))
    if channel:
        query = query.where(Notification.channel == channel)
    with hub.db.write() as session:
        return session.execute(query.values(status="pending", next_attempt_at=hub.now(), attempts=0)).rowcount
