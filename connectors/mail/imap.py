"""IMAP mailboxes: the provider module for stored mail, and the IMAP client helpers the
hub's poller (``hub/mailpoll.py``) drives. No database, no queue here.

Provider side: ``inbound.body`` is one raw RFC 5322 message as fetched; ``inbound.headers``
carry ``x-imap-uid``, ``x-imap-uidvalidity`` and ``x-imap-internaldate``. Mail has no
signature to verify. The delivery key is the Message-ID (or a sha256 of the bytes when
there is none), so the same message fetched from two mailboxes, or again after a
UIDVALIDITY change, is stored once.
"""
from __future__ import annotations

import hashlib
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from imapclient import IMAPClient

from connectors.base import Inbound, Parsed
from connectors.mail import classify, contact
from connectors.mail import parse as mailparse

NAME = "imap"
KIND = "mail"
CHANNEL = "mail"
MAPPING = "mail/imap"
SECRETS = ("password_env",)
HANDLES = ("message",)
IGNORES = ("auto-reply", "bounce", "bulk", "spam")

TEXT_LIMIT = 10_000
LONGEST_ID = 250  # longer Message-IDs are hashed to fit the 300-character keys
HEADER_PARSER = BytesHeaderParser(policy=compat32)


# --- provider module -------------------------------------------------------------------

def verify(inbound: Inbound, settings: Mapping[str, Any]) -> None:
    return None


def parse(inbound: Inbound, settings: Mapping[str, Any]) -> list[Parsed]:
    message = mailparse.read_message(inbound.body)
    mailparse.check_structure(message)
    content = mailparse.read_content(message)
    who = contact.find_contact(message, content, settings)
    identity = message_identity(inbound.body, message.get("Message-ID"))
    _, reply_to = mailparse.first_address(message, "Reply-To")
    fields = {
        "from_name": who.name, "from_email": who.email, "reply_to": reply_to,
        "phone": who.phone, "phone_ext": who.phone_ext, "forwarded_by": who.forwarded_by,
        "relayed_by": who.relayed_by, "page": who.page,
        "subject": mailparse.header(message, "Subject"), "text": who.text[:TEXT_LIMIT],
        "plus_tag": contact.plus_tag(message, settings.get("username")),
        "message_id": mailparse.normalise_message_id(message.get("Message-ID")) or "",
        "date": mailparse.message_date(message, inbound.header("x-imap-internaldate")) or "",
        "attachments": "; ".join(content.attachments),
    }
    extra = {"touch_key": f"mail:{identity}", "thread": mailparse.thread_ids(message)}
    return [Parsed(event_type="message", fields={k: v for k, v in fields.items() if v},
                   delivery_key=f"mail/{identity}", ignore=classify.ignore_reason(message),
                   extra=extra)]


def reply(parsed: Parsed) -> None:
    return None


def message_identity(raw: bytes, message_id) -> str:
    """The normalised Message-ID; ``sha256:<hex>`` of the bytes when there is none."""
    found = mailparse.normalise_message_id(message_id)
    if found and len(found) > LONGEST_ID:
        return "sha256:" + hashlib.sha256(found.encode("utf-8", "surrogateescape")).hexdigest()
    return found or "sha256:" + hashlib.sha256(raw).hexdigest()


def delivery_key(raw: bytes) -> str:
    """The raw event's key, from a header-only parse (cheap: the body is not parsed)."""
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    head = raw if end < 0 else raw[:end + 2]
    return f"mail/{message_identity(raw, HEADER_PARSER.parsebytes(head).get('Message-ID'))}"


# --- IMAP client helpers ---------------------------------------------------------------

@dataclass(frozen=True)
class Folder:
    uidvalidity: int
    uidnext: int | None


@dataclass(frozen=True)
class Fetched:
    uid: int
    raw: bytes
    internaldate: datetime | None


def connect(settings: Mapping[str, Any], timeout: float = 30.0) -> IMAPClient:
    """A logged-in client: TLS by default, STARTTLS or plain text when configured."""
    use_ssl = settings.get("ssl", True)
    context = ssl.create_default_context(cafile=settings.get("ssl_ca_file") or None)
    port = settings.get("port") or (993 if use_ssl else 143)
    client = IMAPClient(settings["host"], port=port, ssl=use_ssl, ssl_context=context,
                        timeout=timeout)
    try:
        if settings.get("starttls") and not use_ssl:
            client.starttls(context)
        client.login(settings["username"], settings.get("password") or "")
    except Exception:
        close(client)
        raise
    client.normalise_times = False  # aware INTERNALDATEs, not local naive times
    return client


def open_folder(client: IMAPClient, folder: str, readonly: bool) -> Folder:
    state = client.select_folder(folder, readonly=readonly)
    return Folder(uidvalidity=int(state[b"UIDVALIDITY"]), uidnext=state.get(b"UIDNEXT"))


def uids_after(client: IMAPClient, last_uid: int) -> list[int]:
    """UIDs above the checkpoint in UID order (``N:*`` always names the last message too)."""
    return sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)


def fetch(client: IMAPClient, uids: list[int]) -> list[Fetched]:
    """BODY.PEEK[] never sets \\Seen; messages expunged meanwhile are simply absent."""
    response = client.fetch(uids, ["BODY.PEEK[]", "INTERNALDATE"])
    fetched = []
    for uid in sorted(response):
        data = response[uid]
        if b"BODY[]" not in data:
            raise ConnectionError(f"FETCH of UID {uid} returned no body")
        fetched.append(Fetched(uid, data[b"BODY[]"], data.get(b"INTERNALDATE")))
    return fetched


def after_commit(client: IMAPClient, uids: list[int], settings: Mapping[str, Any]) -> None:
    action = settings.get("after_commit") or "keep"
    if not uids or action == "keep":
        return
    if action == "seen":
        client.add_flags(uids, [b"\\Seen"], silent=True)
    elif client.has_capability("MOVE"):
        client.move(uids, settings["move_to"])
    else:
        client.copy(uids, settings["move_to"])
        client.add_flags(uids, [b"\\Deleted"], silent=True)
        client.uid_expunge(uids)


def wait_for_mail(client: IMAPClient, seconds: float, stop: threading.Event) -> None:
    """IDLE up to ``seconds`` (returning early on new mail or ``stop``), or NOOP and sleep."""
    if not client.has_capability("IDLE"):
        stop.wait(seconds)
        client.noop()
        return
    if reported_new_mail(client):
        return
    deadline, quick_empty = time.monotonic() + seconds, 0
    client.idle()
    try:
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            step, started = min(1.0, left), time.monotonic()
            responses = client.idle_check(timeout=step)
            if any(r[1:2] == (b"EXISTS",) for r in responses):
                break
            if any(r[:1] == (b"BYE",) for r in responses):
                raise ConnectionError("the server closed the connection (BYE)")
            # imapclient swallows EOF in idle_check: a closed socket returns at once, empty
            quick_empty = quick_empty + 1 if not responses and time.monotonic() - started < step / 10 else 0
            if quick_empty >= 3:
                raise ConnectionError("connection lost during IDLE")
    finally:
        client.idle_done()


def reported_new_mail(client: IMAPClient) -> bool:
    """Whether the server announced new mail (an untagged EXISTS) while we were fetching.
    It announces each arrival once: IDLE would not repeat it, and the mail would wait a whole
    poll interval. imapclient keeps no public record of it; imaplib's buffer has it."""
    pending = getattr(getattr(client, "_imap", None), "untagged_responses", None)
    return bool(pending and pending.pop("EXISTS", None))


def close(client: IMAPClient | None) -> None:
    if client is None:
        return
    try:
        client.logout()
    except Exception:  # already broken: just drop the socket
        try:
            client.shutdown()
        except Exception:
            pass
