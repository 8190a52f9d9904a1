"""SMTP e-mail sender (``email.sender: smtp``), with STARTTLS or SSL when configured."""
from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from connectors.base import Outgoing, PermanentFailure, Sent, TemporaryFailure

NAME = "smtp"
SECRETS = ("password_env",)


def build_message(message: Outgoing, settings: dict) -> EmailMessage:
    email = EmailMessage()
    email["From"] = settings["from"]
    email["To"] = message.to
    email["Subject"] = message.subject or ""
    domain = settings["from"].rpartition("@")[2].strip(" >") or None
    email["Message-ID"] = make_msgid(idstring=message.idempotency_key, domain=domain)
    if message.reply_to_message_id:
        email["In-Reply-To"] = message.reply_to_message_id
        email["References"] = message.reply_to_message_id
    email.set_content(message.text)
    return email


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
    email = build_message(message, settings)
    try:
        with connect(settings) as client:
            client.send_message(email)
    except smtplib.SMTPRecipientsRefused as exc:
        code, reason = next(iter(exc.recipients.values()))
        raise classify(code, reason) from exc
    except smtplib.SMTPResponseException as exc:
        raise classify(exc.smtp_code, exc.smtp_error) from exc
    except (smtplib.SMTPException, socket.error, ssl.SSLError) as exc:
        raise TemporaryFailure(f"SMTP: {exc}") from exc
    return Sent(provider_message_id=email["Message-ID"])


def classify(code: int, reason: bytes | str):
    text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    failure = PermanentFailure if 500 <= code < 600 else TemporaryFailure
    return failure(f"SMTP {code}: {text}")
