"""The ``log`` sender: appends each message as one JSON line to a file, for development.

The hub passes the file (``HUB_SMS_LOG`` for SMS, ``HUB_MAIL_LOG`` for e-mail) as
``settings["path"]``; with no file the message is only written to the ``hub.outbox`` logger.
"""
from __future__ import annotations

import fcntl
import json
import logging
import uuid
from datetime import UTC, datetime

from connectors.base import Outgoing, Sent, TemporaryFailure

NAME = "log"
SECRETS = ()
SENDER_SETTINGS = ()  # no config section: the file comes from the environment
SETTINGS_FROM_ENV = {"sms": "HUB_SMS_LOG", "email": "HUB_MAIL_LOG"}
log = logging.getLogger("hub.outbox")


def send(message: Outgoing, settings: dict) -> Sent:
    message_id = f"log-{uuid.uuid4().hex}"
    record = {
        "to": message.to,
        "text": message.text,
        "channel": message.channel,
        "subject": message.subject,
        "message_id": message_id,
        "idempotency_key": message.idempotency_key,
        "in_reply_to": message.reply_to_message_id,
        "sent_at": datetime.now(UTC).isoformat(),
    }
    path = settings.get("path")
    if not path:
        log.info("%s to %s: %s", message.channel, message.to, message.text)
        return Sent(provider_message_id=message_id)
    try:
        with open(path, "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # several workers append to one file
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise TemporaryFailure(f"cannot write {path}: {exc.strerror}") from exc
    return Sent(provider_message_id=message_id)
