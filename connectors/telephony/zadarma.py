"""Zadarma (and Novofon v1) PBX call notifications.

Form-encoded POSTs with the event name in ``event``, signed in the ``Signature`` header:
base64 of the lower-case hex HMAC-SHA1 of two or three fields chosen by the event (``SIGNED``).
Zadarma sends that header only when the account has API keys, so the hub requires them. So few
fields are signed that the signature proves origin, not integrity: restrict the source with
``allowed_ips`` (Zadarma publishes 185.45.152.40/30).

Saving the URL in Zadarma's account sends ``GET ?zd_echo=<token>``, unsigned, and expects the
token back as the body. It passes ``verify`` only as a short token and is never stored.

One call is ``pbx_call_id`` (stable through IVR and transfers). ``NOTIFY_END`` may come alone
(a call that ended in the IVR or a queue) and decides the call by itself: missed unless the
disposition is ``answered`` with a duration > 0. ``NOTIFY_OUT_*`` are outbound calls.
``NOTIFY_RECORD`` only adds a recording (``zadarma:<call_id_with_rec>``: the file is fetched
through Zadarma's API): a non-final ``in_progress`` CallState the hub merges into the call's
touch without changing its status. Events carry no order, so ``seq`` is the event's rank.
The delivery key is ``pbx_call_id:event``, plus the extension for INTERNAL/ANSWER (a call offered
to several extensions repeats them) and the recording id for RECORD.

``SMS`` (an SMS to one of our Zadarma numbers) is a lead on the SMS channel. Its ``result``
holds ``caller_id`` (the sender), ``caller_did`` (our number) and ``text``; Zadarma calls it an
array but signs it as a string, so it is read leniently (see ``sms_content``) and mapped from
``result.<name>``. It carries no message id: each delivery is stored (a second copy of one SMS
becomes a second touch on the same open lead, never a lost or a second lead).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from connectors.base import BadRequest, CallState, Forbidden, Inbound, Parsed, Reply, Unauthorized
from connectors.fields import integer

NAME = "zadarma"
KIND = "telephony"
CHANNEL = "call"
MAPPING = "telephony/zadarma"
SECRETS = ("secret_env",)
SETTINGS = SECRETS + ("allowed_ips",)  # the keys of its config section
METHODS = ("POST", "GET")  # GET only for the zd_echo check

_INBOUND_SIGNED = ("caller_id", "called_did", "call_start")
SIGNED = {
    "NOTIFY_START": _INBOUND_SIGNED, "NOTIFY_INTERNAL": _INBOUND_SIGNED,
    "NOTIFY_END": _INBOUND_SIGNED, "NOTIFY_IVR": _INBOUND_SIGNED,
    "NOTIFY_ANSWER": ("caller_id", "destination", "call_start"),
    "NOTIFY_OUT_START": ("internal", "destination", "call_start"),
    "NOTIFY_OUT_END": ("internal", "destination", "call_start"),
    "NOTIFY_RECORD": ("pbx_call_id", "call_id_with_rec"),
}
RESULT_SIGNED = ("result",)  # SMS, NUMBER_LOOKUP, CALL_TRACKING, DOCUMENT and anything newer
RANK = {"NOTIFY_START": 1, "NOTIFY_OUT_START": 1, "NOTIFY_INTERNAL": 2, "NOTIFY_ANSWER": 3,
        "NOTIFY_END": 4, "NOTIFY_OUT_END": 4, "NOTIFY_RECORD": 5}
HANDLES = tuple(RANK) + ("SMS",)
IGNORES = ("echo", "NOTIFY_IVR", "NUMBER_LOOKUP", "CALL_TRACKING", "SPEECH_RECOGNITION", "DOCUMENT")
SMS_FIELDS = ("caller_id", "caller_did", "text")
WITHHELD = {"", "0", "anonymous", "unknown", "private", "hidden", "restricted"}
ECHO_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def verify(inbound: Inbound, settings: Mapping[str, Any]) -> None:
    if echo_token(inbound) is not None:
        return  # unsigned by Zadarma; answering it only reflects a short token
    check_source(inbound.remote_addr, settings.get("allowed_ips"))
    secret = settings.get("secret")
    if not secret:
        raise Unauthorized("the Zadarma API secret is not configured", {"Signature": "no secret"})
    given = (inbound.header("Signature") or "").strip()
    if not given:
        raise Unauthorized("missing Signature header", {"Signature": "missing"})
    if not hmac.compare_digest(given.encode("utf-8"), signature(read_fields(inbound), secret).encode()):
        raise Forbidden("Signature does not match", {"Signature": "invalid"})


def signature(fields: Mapping[str, str], secret: str) -> str:
    names = SIGNED.get(fields.get("event", ""), RESULT_SIGNED)
    message = "".join(fields.get(name, "") for name in names)
    digest = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha1).hexdigest()
    return base64.b64encode(digest.encode("ascii")).decode("ascii")


def check_source(remote_addr: str | None, allowed: Any) -> None:
    if not allowed:
        return
    networks = [allowed] if isinstance(allowed, str) else allowed
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        address = None
    if address is None or not any(address in ipaddress.ip_network(net, strict=False) for net in networks):
        raise Forbidden(f"requests from {remote_addr} are not allowed", {"remote_addr": "not allowed"})


def parse(inbound: Inbound, settings: Mapping[str, Any]) -> list[Parsed]:
    if is_echo(inbound):
        token = echo_token(inbound)
        if token is None:
            raise BadRequest("zd_echo is not a short token", {"zd_echo": "expected [A-Za-z0-9_-]{1,64}"})
        return [Parsed("echo", handshake=True, extra={"echo": token})]
    fields = read_fields(inbound)
    event = fields.get("event", "").strip()
    if not event:
        raise BadRequest("missing event", {"event": "required"})
    if event == "SMS":
        return [sms_event(fields)]
    if event not in RANK:
        return [Parsed(event, fields, ignore=f"unsupported event {event}")]
    call_id = fields.get("pbx_call_id", "").strip()
    if not call_id:
        raise BadRequest("missing pbx_call_id", {"pbx_call_id": "required"})
    return [call_event(fields, event, call_id)]


def reply(parsed: Parsed | None) -> Reply:
    if parsed is not None and parsed.handshake:
        return Reply(200, parsed.extra["echo"], "text/plain")
    return Reply(200, "", "text/plain")  # a body here would steer the call (redirect, hangup)


def is_echo(inbound: Inbound) -> bool:
    return inbound.method.upper() == "GET" and any(name == "zd_echo" for name, _ in inbound.query)


def echo_token(inbound: Inbound) -> str | None:
    """The ``zd_echo`` value of a GET when it is a short token, else ``None``."""
    if not is_echo(inbound):
        return None
    token = next(value for name, value in inbound.query if name == "zd_echo")
    return token if ECHO_TOKEN.fullmatch(token) else None


def read_fields(inbound: Inbound) -> dict[str, str]:
    return dict(parse_qsl(inbound.body.decode("utf-8", "replace"), keep_blank_values=True))


def call_event(fields: dict[str, str], event: str, call_id: str) -> Parsed:
    outbound = event.startswith("NOTIFY_OUT_") or (
        event in ("NOTIFY_ANSWER", "NOTIFY_RECORD") and call_id.startswith("out_"))
    client = fields.get("destination" if outbound else "caller_id", "").strip()
    anonymous = not outbound and event != "NOTIFY_RECORD" and client.lower() in WITHHELD
    state = CallState(
        call_id=call_id, direction="outbound" if outbound else "inbound",
        status=call_status(fields, event), final=RANK[event] == 4, seq=float(RANK[event]),
        duration=integer(fields, "duration"), recording_url=recording(fields, event),
        extension=(fields.get("last_internal") or fields.get("internal") or "").strip() or None,
        anonymous=anonymous)
    numbers = {"call.client": "" if anonymous else client,
               "call.called": "" if outbound else fields.get("called_did", "").strip()}
    return Parsed(event, {**fields, **{k: v for k, v in numbers.items() if v}},
                  delivery_key=delivery_key(fields, event, call_id),
                  extra={"touch_key": f"call:{NAME}:{call_id}", "call": state})


def sms_event(fields: dict[str, str]) -> Parsed:
    message = {f"result.{name}": value for name, value in sms_content(fields).items()}
    return Parsed("SMS", {**fields, **message}, extra={"channel": "sms"})


def sms_content(fields: dict[str, str]) -> dict[str, str]:
    """``caller_id``, ``caller_did`` and ``text`` of an SMS event, wherever they are: in
    ``result`` as a JSON object (what the signed string suggests) or a query string, in PHP's
    ``result[<name>]`` form keys, or beside ``result``."""
    found = result_object(fields.get("result", ""))
    content = {name: first_text(found.get(name), fields.get(f"result[{name}]"), fields.get(name))
               for name in SMS_FIELDS}
    return {name: value for name, value in content.items() if value}


def first_text(*candidates: Any) -> str:
    """The first candidate that is a non-blank string or number, as text."""
    texts = (str(c).strip() for c in candidates if isinstance(c, str) or type(c) in (int, float))
    return next((text for text in texts if text), "")


def result_object(result: str) -> dict:
    try:
        document = json.loads(result)
    except (ValueError, RecursionError):
        return dict(parse_qsl(result))
    if isinstance(document, list):  # one message in a list
        document = next((item for item in document if isinstance(item, dict)), {})
    return document if isinstance(document, dict) else {}


def call_status(fields: dict[str, str], event: str) -> str:
    if RANK[event] < 3:
        return "ringing"
    if RANK[event] != 4:
        return "in_progress"
    talked = fields.get("disposition", "").strip().lower() == "answered"
    return "answered" if talked and integer(fields, "duration") != 0 else "missed"


def recording(fields: dict[str, str], event: str) -> str | None:
    rec_id = fields.get("call_id_with_rec", "").strip()
    if event == "NOTIFY_RECORD" and not rec_id:
        raise BadRequest("missing call_id_with_rec", {"call_id_with_rec": "required"})
    recorded = event == "NOTIFY_RECORD" or fields.get("is_recorded", "").strip() == "1"
    return f"zadarma:{rec_id}" if recorded and rec_id else None


def delivery_key(fields: dict[str, str], event: str, call_id: str) -> str:
    # A call offered to several extensions (or transferred) repeats INTERNAL/ANSWER per extension.
    suffix = {"NOTIFY_RECORD": "call_id_with_rec", "NOTIFY_INTERNAL": "internal",
              "NOTIFY_ANSWER": "internal"}.get(event)
    return f"{call_id}:{event}" + (f":{fields.get(suffix, '').strip()}" if suffix else "")


