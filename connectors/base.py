"""The neutral types every provider module speaks, and the errors it may raise.

A provider module is a plain Python module exposing:

``NAME``      the provider slug (``tilda``), used in URLs, mappings and fixtures;
``KIND``      the URL kind segment (``forms``, ``telephony``, ``sms``, ``mail``);
``CHANNEL``   the lead channel its events feed (``form``, ``call``, ``sms``, ``mail``);
``MAPPING``   the mapping file below ``mappings/`` (``webforms/tilda``);
``SECRETS``   config keys ending in ``_env`` it reads from its settings;
``HANDLES`` / ``IGNORES``  event types it turns into leads / acknowledges and drops;
``METHODS``   the HTTP methods its provider documents (``("POST",)`` when absent); the hub
              answers any other with 405 and stores nothing;
``verify(inbound, settings)``  raises ``Unauthorized`` / ``Forbidden`` on a bad signature;
``parse(inbound, settings)``   returns a list of ``Parsed``; raises ``BadRequest`` /
                               ``UnsupportedMediaType`` naming the field;
``reply(parsed)``              the answer the provider expects, or ``None`` for the
                               hub's standard JSON answer.

Neutral conventions by kind (the hub reads these; the mapping maps ``fields`` to lead fields):

* calls: ``Parsed.extra["call"]`` is a ``CallState``; ``extra["touch_key"]`` is
  ``call:<provider>:<call id>`` so every webhook of one call merges into one touch. The module
  also puts ``call.client`` (the client's number as the provider wrote it: the caller for an
  inbound call, the dialled number for an outbound one) and ``call.called`` (our number that was
  called, for call tracking) into ``fields`` for the mapping.
* SMS: an inbound message is an ordinary lead event (``extra["touch_key"]`` =
  ``sms:<provider>:<message id>``); a delivery report of a message we sent is
  ``Parsed(event_type="message.status", extra={"delivery": DeliveryReport(...)})``. A module
  of another kind that reports an SMS (a PBX's SMS event) sets ``extra["channel"] = "sms"``:
  any event may name its lead channel there when it is not the module's ``CHANNEL``.
* mail: ``extra["touch_key"]`` = ``mail:<Message-ID>``; ``extra["thread"]`` lists the
  Message-IDs of ``In-Reply-To``/``References``; ``ignore`` names why auto-replies, bounces,
  bulk mail and spam make no lead.

* CRM events (``connectors/crm/<name>.py``, received at ``/hooks/crm/<target>``): each
  ``Parsed`` carries ``extra["crm"]``, a ``CrmEvent``; ``read_back`` turns it into a
  ``CrmLead`` (the lead as the CRM has it now), and so does polling (``changed_since``).

``settings`` is the provider's (or the form's) config section with secrets resolved: a key
``auth_token_env`` in the config arrives here as ``auth_token`` holding the secret's value.
"""
from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_WHOLE_NUMBER = 2**63 - 1  # what a BIGINT column holds, and far more than any id or time
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_JSON_DEPTH = 32  # objects and arrays inside each other; real payloads use three or four
# Python codecs that are no charset a sender writes in: they would unescape or punycode the text.
NOT_CHARSETS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"})


@dataclass(frozen=True)
class Inbound:
    """One HTTP delivery as received; stored raw and parsed again on replay."""

    method: str
    url: str  # the public URL the provider called, query string included
    subpath: str = ""  # below /hooks/<kind>/<provider>/, e.g. "events/call"
    query: tuple[tuple[str, str], ...] = ()
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    remote_addr: str | None = None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class Parsed:
    """One neutral event found in a delivery.

    ``fields`` holds the provider's fields as flat strings (nested JSON keys joined with dots),
    after provider-specific unpacking (a cookie string split, a JSON envelope opened), ready for
    the declarative mapping. ``delivery_key`` identifies the provider's delivery (Tilda's tranid,
    Twilio's MessageSid) so a repeated delivery is stored once. ``ignore`` names why the event is
    acknowledged but makes no lead (a honeypot, an unsupported event type). ``handshake`` marks a
    connection check that is answered but never stored (Tilda's ``test=test``).
    """

    event_type: str
    fields: dict[str, str] = field(default_factory=dict)
    delivery_key: str | None = None
    ignore: str | None = None
    handshake: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallState:
    """What one webhook says about a call. ``status`` is ``ringing``, ``in_progress``,
    ``answered`` or ``missed``; ``final`` marks the provider's end-of-call event. ``seq`` orders
    events of one call when they arrive out of order (a sequence number or a timestamp)."""

    call_id: str
    direction: str  # "inbound" | "outbound"
    status: str
    final: bool = False
    seq: float | None = None
    duration: int | None = None  # seconds of conversation
    recording_url: str | None = None
    extension: str | None = None  # the manager's extension that answered or was offered the call
    anonymous: bool = False  # the caller id was withheld


@dataclass(frozen=True)
class DeliveryReport:
    """A provider's word on a message we sent: ``status`` is ``delivered``, ``failed`` or
    ``sent`` (accepted, in transit)."""

    provider_message_id: str
    status: str
    error: str | None = None
    at: str | None = None


@dataclass(frozen=True)
class CrmLead:
    """A CRM's lead as the CRM has it: read back, polled, or carried whole by its webhook.

    ``status`` is the CRM's stage code or id and ``user`` its responsible user's id, both as
    text; ``semantic`` is the CRM's own meaning of the stage (``process``, ``success``,
    ``failure``) when it says so. ``modified_at`` orders two states of one lead;
    ``modified_by`` is the CRM user who made the last change."""

    external_id: str
    status: str | None = None
    semantic: str | None = None
    user: str | None = None
    modified_at: datetime | None = None
    modified_by: str | None = None
    deleted: bool = False


@dataclass(frozen=True)
class CrmEvent:
    """One change a CRM's webhook announces. ``action`` is ``update`` or ``delete``; ``lead``
    is the lead as the event itself describes it, when it does (amoCRM sends the fields,
    Bitrix24 only the id, so its lead is read back)."""

    action: str
    external_id: str
    lead: CrmLead | None = None


@dataclass(frozen=True)
class Reply:
    """A provider-specific HTTP answer (TwiML, an echo, a plain ``100``)."""

    status: int = 200
    body: str = ""
    content_type: str = "text/plain; charset=utf-8"


class ConnectorError(Exception):
    status = 400

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class BadRequest(ConnectorError):
    status = 400


class Unauthorized(ConnectorError):
    status = 401


class Forbidden(ConnectorError):
    status = 403


class UnsupportedMediaType(ConnectorError):
    status = 415


@dataclass(frozen=True)
class Outgoing:
    """One message a sender module delivers: a confirmation SMS or e-mail, a reminder."""

    channel: str  # "sms" | "email"
    to: str
    text: str
    subject: str | None = None
    idempotency_key: str | None = None  # stable per outbox row; senders pass it on if they can
    reply_to_message_id: str | None = None  # e-mail threading (In-Reply-To / References)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sent:
    provider_message_id: str | None = None
    status: str = "sent"  # "sent", or "queued" when the provider delivers later


class SendError(Exception):
    """Base of sender failures; ``permanent`` ones are never retried."""

    permanent = False

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class TemporaryFailure(SendError):
    permanent = False


class PermanentFailure(SendError):
    permanent = True


class Ambiguous(SendError):
    """The provider may or may not have taken the message (the answer was lost) and offers no
    idempotency key: not retried, recorded as ``unknown`` for an operator."""

    permanent = True


def whole_number(text: str, maximum: int = MAX_WHOLE_NUMBER) -> int:
    """``text`` (spaces around it ignored) as a whole number 0..``maximum``; ``ValueError``
    for anything else.

    The one reader of numbers that come from outside: ``str.isdigit`` and ``int`` accept more
    than a provider or a URL ever means (``'²'.isdigit()`` is true, ``int('٣')`` is 3), and
    thousands of digits make a number no column, float or timestamp holds."""
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()) or len(digits) > len(str(maximum)):
        raise ValueError(f"not a whole number from 0 to {maximum}")
    number = int(digits)
    if number > maximum:
        raise ValueError(f"not a whole number from 0 to {maximum}")
    return number


def unix_time(seconds: int) -> datetime:
    """The UTC moment of a Unix time; ``ValueError`` outside the years 1..9999."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"Unix time {seconds} is out of range") from exc


def clean_text(text: str) -> str:
    """``text`` without NUL characters, and with lone surrogates (what a JSON ``"\\ud800"``
    escape decodes to) replaced by U+FFFD: text every database, encoder and JSON reader takes."""
    text = text.replace("\x00", "")
    return LONE_SURROGATE.sub("\ufffd", text) if not text.isascii() else text


def read_json(text: str) -> Any:
    """A JSON document from outside; ``ValueError`` naming the problem when it is not JSON or
    is nested deeper than ``MAX_JSON_DEPTH`` (readers that walk it recursively stay safe)."""
    try:
        document = json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from exc
    if json_depth(document) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return document


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def json_depth(document: Any) -> int:
    """How many objects and arrays deep ``document`` goes (walked without recursion)."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in children)
    return deepest


def text_codec(charset: str | None) -> str | None:
    """The Python codec for a declared charset, or ``None`` when there is none, it is unknown,
    it is no text encoding (``rot13``, ``base64``) or no charset at all (``idna``, ``unicode_escape``)."""
    if not charset:
        return None
    try:
        codec = codecs.lookup(charset.strip().strip('"'))
    except (LookupError, ValueError):  # unknown, or a NUL or a surrogate in the name
        return None
    usable = getattr(codec, "_is_text_encoding", True) and codec.name not in NOT_CHARSETS
    return codec.name if usable else None
