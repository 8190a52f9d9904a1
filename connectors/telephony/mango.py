"""MANGO OFFICE virtual PBX (VPBX), API Realtime notifications.

Mango POSTs form fields ``vpbx_api_key``, ``sign`` and ``json`` to our base URL + an event
path (``inbound.subpath``). ``sign`` is the lower-case hex SHA-256 of key + raw json + salt.

One call group is ``entry_id`` (constant through IVR and transfers), the touch key. Two paths
make call state:

* ``events/call`` — one leg's state (``call_id``, ``seq`` per leg). Never final: a leg's
  ``Disconnected`` does not end the group. Mango sends no direction here; an employee on the
  ``from`` side means outbound, employees on both sides an internal call (ignored).
* ``events/summary`` — the group's final word: ``call_direction`` 1 in, 2 out, 0 internal
  (ignored). Answered when ``talk_time`` (a timestamp, 0 when nobody talked) is set — it wins
  over ``entry_result``, which says 1 for calls that only heard the IVR.

``seq`` spans the legs of a group: the event's Unix time + the leg's counter / 1000; the
summary, sent after the last leg, gets its ``end_time`` + 1. The ``ping`` connection check is
answered without a signature check and never stored. Other paths are acknowledged and dropped.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from connectors import base
from connectors.base import BadRequest, CallState, Forbidden, Inbound, Parsed, Reply, Unauthorized
from connectors.fields import whole

NAME = "mango"
KIND = "telephony"
CHANNEL = "call"
MAPPING = "telephony/mango"
SECRETS = ("api_key_env", "api_salt_env")
SETTINGS = SECRETS  # the keys of its config section
HANDLES = ("events/call", "events/summary")
IGNORES = ("ping", "events/recording", "events/record/added", "events/record/tagged",
           "events/dtmf", "events/sms", "result/callback", "result/sms", "result/stat")
LEG_STATUS = {"Appeared": "ringing", "Connected": "in_progress", "OnHold": "in_progress",
              "Disconnected": "in_progress"}


def verify(inbound: Inbound, settings: Mapping[str, Any]) -> None:
    if event_path(inbound) == "ping":
        return
    key, salt = settings.get("api_key"), settings.get("api_salt")
    if not key or not salt:
        raise Unauthorized("the Mango API key or salt is not configured", {"sign": "no key"})
    form = read_form(inbound)
    if not form.get("vpbx_api_key") or not form.get("sign"):
        raise Unauthorized("missing vpbx_api_key or sign", {"sign": "missing"})
    if not hmac.compare_digest(form["vpbx_api_key"].strip().encode("utf-8"), key.encode("utf-8")):
        raise Forbidden("vpbx_api_key is not this PBX's key", {"vpbx_api_key": "invalid"})
    expected = hashlib.sha256((key + form.get("json", "") + salt).encode("utf-8")).hexdigest()
    if not hmac.compare_digest(form["sign"].strip().lower().encode("utf-8"), expected.encode()):
        raise Forbidden("sign does not match", {"sign": "invalid"})


def parse(inbound: Inbound, settings: Mapping[str, Any]) -> list[Parsed]:
    path = event_path(inbound)
    if path == "ping":
        return [Parsed("ping", handshake=True)]
    if path not in HANDLES:
        return [Parsed(path, ignore=f"unsupported event {path or '(none)'}")]
    document = read_json(read_form(inbound))
    entry_id = text(document, "entry_id")
    if not entry_id:
        raise BadRequest("missing json.entry_id", {"json.entry_id": "required"})
    if path == "events/summary":
        return [summary_event(document, entry_id)]
    return [leg_event(document, entry_id)]


def reply(parsed: Parsed | None) -> Reply:
    return Reply(200, "")


def event_path(inbound: Inbound) -> str:
    return inbound.subpath.strip("/")


def read_form(inbound: Inbound) -> dict[str, str]:
    return dict(parse_qsl(inbound.body.decode("utf-8", "replace"), keep_blank_values=True))


def read_json(form: Mapping[str, str]) -> dict[str, Any]:
    try:
        document = base.read_json(form.get("json", ""))
    except ValueError as exc:
        raise BadRequest("the json field is not valid JSON", {"json": f"not JSON: {exc}"}) from exc
    if not isinstance(document, dict):
        raise BadRequest("the json field must hold an object", {"json": "expected an object"})
    return document


def summary_event(document: dict[str, Any], entry_id: str) -> Parsed:
    direction = text(document, "call_direction")
    if not direction:
        raise BadRequest("missing json.call_direction", {"json.call_direction": "required"})
    if direction not in ("1", "2"):
        reason = "internal call" if direction == "0" else f"unsupported call_direction {direction}"
        return Parsed("events/summary", flatten(document), ignore=reason)
    talk, end = number(document, "talk_time"), number(document, "end_time")
    answered = talk > 0 if talk is not None else number(document, "entry_result") == 1
    duration = (end - talk if end and talk else None) if answered else 0
    seq = float((end or number(document, "create_time") or 0) + 1)
    state = call_state(document, entry_id, direction == "2", seq,
                       status="answered" if answered else "missed", final=True, duration=duration)
    return event("events/summary", document, state, delivery_key=f"{entry_id}:summary")


def leg_event(document: dict[str, Any], entry_id: str) -> Parsed:
    leg, seq, status = text(document, "call_id"), number(document, "seq"), text(document, "call_state")
    if not leg or seq is None:
        name = "json.call_id" if not leg else "json.seq"
        raise BadRequest(f"missing {name}", {name: "required"})
    if status not in LEG_STATUS:
        return Parsed("events/call", flatten(document), ignore=f"unsupported call_state {status}")
    employee_from, employee_to = text(document, "from.extension"), text(document, "to.extension")
    if employee_from and employee_to:
        return Parsed("events/call", flatten(document), ignore="internal call")
    order = (number(document, "timestamp") or 0) + min(seq, 999) / 1000
    state = call_state(document, entry_id, bool(employee_from), order, status=LEG_STATUS[status])
    return event("events/call", document, state, delivery_key=f"{entry_id}:{leg}:{seq}")


def call_state(document: dict[str, Any], entry_id: str, outbound: bool, seq: float,
               **state: Any) -> CallState:
    anonymous = not outbound and not text(document, "from.number")
    extension = text(document, "from.extension" if outbound else "to.extension")
    return CallState(call_id=entry_id, direction="outbound" if outbound else "inbound", seq=seq,
                     extension=extension or None, anonymous=anonymous, **state)


def event(event_type: str, document: dict[str, Any], state: CallState, delivery_key: str) -> Parsed:
    outbound = state.direction == "outbound"
    client = text(document, "to.number" if outbound else "from.number")
    called = "" if outbound else text(document, "line_number") or text(document, "to.line_number")
    fields = flatten(document)
    fields.update({name: value for name, value in
                   (("call.client", client), ("call.called", called)) if value})
    return Parsed(event_type, fields, delivery_key=delivery_key,
                  extra={"touch_key": f"call:{NAME}:{state.call_id}", "call": state})


def text(document: dict[str, Any], path: str) -> str:
    """The value at a dotted path as a stripped string; ``""`` when absent or null."""
    value: Any = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None or isinstance(value, (dict, list)) else str(value).strip()


def number(document: dict[str, Any], path: str) -> int | None:
    """An integer field Mango may send as a number or a string (``"seq": "1"``)."""
    return whole(text(document, path), f"json.{path}")


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """``{"from": {"number": "7..."}}`` → ``{"from.number": "7..."}``."""
    if isinstance(value, dict):
        return {name: item for key, child in value.items()
                for name, item in flatten(child, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {prefix[:-1]: json.dumps(value, ensure_ascii=False)}
    return {prefix[:-1]: "" if value is None else str(value)}
