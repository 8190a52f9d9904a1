"""SMTP e-mail sender (``email.sender: smtp``), with STARTTLS or SSL when configured. The
message's bytes are built by ``connectors.mail.compose``."""
from __future__ import annotations

import smtplib
import ssl
from datetime import UTC, datetime
from email.utils import parseaddr

from connectors.base import Outgoing, PermanentFailure, Sent, TemporaryFailure
from connectors.mail import compose

NAME = "smtp"
SECRETS = ("password_env",)


def build_message(message: Outgoing, settings: dict) -> tuple[str, bytes]:
    """(Message-ID, bytes); dated by the hub's clock when the outbox passes it in ``meta``."""
    date = message.meta.get("date") or datetime.now(UTC)
    return compose.build(message, settings["from"], date)


def connect(settings: dict) -> smtplib.SMTP:
    timeout = settings.get("timeout", 10.0)
    if settings.get("ssl"):
        client = smtplib.SMTP_SSL(settings["host"], settings["port"], timeout=timeout,
                                  context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(settings["host"], settings["port"], timeout=timeout)
        if settings.get("starttls"):
            client.starttls(context=ssl.create_default_context())
    if settings.get("username"):
        client.login(settings["username"], settings.get("password") or "")
    return client


def send(message: Outgoing, settings: dict) -> Sent:
    message_id, data = build_message(message, settings)
    try:
        with connect(settings) as client:
            client.sendmail(parseaddr(settings["from"])[1], [message.to], data)
    except smtplib.SMTPRecipientsRefused as exc:
        code, reason = next(iter(exc.recipients.values()))
        raise classify(code, reason) from exc
    except smtplib.SMTPResponseException as exc:
        raise classify(exc.smtp_code, exc.smtp_error) from exc
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        raise TemporaryFailure(f"SMTP: {exc}") from exc
    return Sent(provider_message_id=message_id)


def classify(code: int, reason: bytes | str):
    text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    failure = PermanentFailure if 500 <= code < 600 else TemporaryFailure
    return failure(f"SMTP {code}: {text}")
