"""Mail that makes no lead: auto-replies, bounces, bulk mail and server-flagged spam.

Each check reads headers only (and the top-level content type), so classifying is cheap.
The reason names are the module's ``IGNORES``; a classified message is stored and marked
``ignored`` with its reason, never answered (RFC 3834: do not reply to auto-submitted mail).
"""
from __future__ import annotations

from email.message import Message
from email.utils import parseaddr

AUTO_REPLY_HEADERS = ("X-Autoreply", "X-Autorespond")
BULK_PRECEDENCE = ("bulk", "list", "junk")
DAEMON_SENDERS = ("mailer-daemon", "postmaster")


def ignore_reason(message: Message) -> str | None:
    """``"spam"``, ``"bounce"``, ``"auto-reply"``, ``"bulk"``, or ``None`` for a lead."""
    if is_spam(message):
        return "spam"
    if is_bounce(message):
        return "bounce"
    if is_auto_reply(message):
        return "auto-reply"
    if is_bulk(message):
        return "bulk"
    return None


def value(message: Message, name: str) -> str:
    return " ".join(str(message.get(name) or "").split()).lower()


def is_spam(message: Message) -> bool:
    return (value(message, "X-Spam-Flag").startswith("yes")
            or value(message, "X-Spam-Status").startswith("yes"))


def is_bounce(message: Message) -> bool:
    """A DSN (RFC 3464/6522), or mail from MAILER-DAEMON / a null Return-Path from a daemon."""
    if (message.get_content_type() == "multipart/report"
            and str(message.get_param("report-type") or "").lower() == "delivery-status"):
        return True
    if message.get("X-Failed-Recipients"):
        return True
    sender = str(message.get("From") or "").lower()
    if not any(name in sender for name in DAEMON_SENDERS):
        return False  # spares parsing the address of every ordinary message
    local = parseaddr(sender)[1].partition("@")[0]
    null_return_path = value(message, "Return-Path") in ("<>", "")
    return local == "mailer-daemon" or (local in DAEMON_SENDERS and null_return_path)


def is_auto_reply(message: Message) -> bool:
    """RFC 3834 ``Auto-Submitted`` other than ``no``, and the common non-standard markers.
    ``X-Auto-Response-Suppress`` alone is not one: Outlook puts it on ordinary mail."""
    submitted = value(message, "Auto-Submitted").split(";")[0].strip()
    if submitted and submitted != "no":
        return True
    if any(message.get(name) is not None and value(message, name) != "no"
           for name in AUTO_REPLY_HEADERS):
        return True
    return value(message, "Precedence") == "auto_reply"


def is_bulk(message: Message) -> bool:
    """Mailing lists and newsletters: RFC 2919 List-Id, RFC 2369 List-Unsubscribe, Precedence."""
    if message.get("List-Id") is not None or message.get("List-Unsubscribe") is not None:
        return True
    return value(message, "Precedence") in BULK_PRECEDENCE
