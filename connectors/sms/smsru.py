"""SMS.ru: delivery-status callbacks and sending (``sms/send`` with ``json=1``).

SMS.ru posts ``data[0]``, ``data[1]``, … (one newline-separated record each) and
``hash = sha256(api_id + data[0] + data[1] + …)`` in lower hex — reconstructed from public
receivers, not from the official page, so the parsing is lenient (``data[]`` without an index
is accepted in posted order). The handler must answer ``100`` to every request, otherwise
SMS.ru repeats it. SMS.ru has no inbound-SMS webhook, so nothing here makes a lead.

SMS.ru has no idempotency key: a request that timed out after it was sent may have sent the
SMS, so such an outcome is not retried (a duplicate confirmation is worse than none); the
outbox row ends dead with the reason, for an operator to check and replay.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import requests

from connectors.base import (
    Ambiguous,
    BadRequest,
    DeliveryReport,
    Forbidden,
    Inbound,
    Outgoing,
    Parsed,
    PermanentFailure,
    Reply,
    Sent,
    TemporaryFailure,
    Unauthorized,
    UnsupportedMediaType,
)
from connectors.fields import unix_time_iso, whole_or_none

NAME = "smsru"
KIND = "sms"
CHANNEL = "sms"
MAPPING = "sms/smsru"
SECRETS = ("api_id_env",)
SETTINGS = SECRETS  # its sms.inbound section
SENDER_SETTINGS = SECRETS + ("from", "base_url", "timeout")  # its sms.smsru section
HANDLES = ("message.status",)
IGNORES = ("callcheck_status",)

API_URL = "https://sms.ru"
DATA_KEY = re.compile(r"^data(?:\[(\d{0,9})\])?$", re.ASCII)  # longer indexes are no SMS.ru record
DELIVERED, IN_TRANSIT = 103, (100, 101, 102)
STATUS_TEXT = {104: "cannot be delivered: lifetime expired"}
TEMPORARY_CODES = frozenset({220}) | frozenset(range(500, 600))  # "try later", server errors
AMBIGUOUS = ("the SMS may have been sent; not retried to avoid a duplicate "
             "(SMS.ru has no idempotency key)")


# --- inbound -------------------------------------------------------------------------------

def verify(inbound: Inbound, settings: Mapping[str, Any]) -> None:
    api_id = settings.get("api_id")
    if not api_id:
        raise Unauthorized("the SMS.ru api_id is not configured", {"hash": "no api_id"})
    records, given = read_callback(inbound)
    if not given:
        raise Unauthorized("missing hash", {"hash": "missing"})
    expected = hashlib.sha256((api_id + "".join(records)).encode("utf-8")).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode("utf-8")):
        raise Forbidden("hash does not match", {"hash": "invalid"})


def parse(inbound: Inbound, settings: Mapping[str, Any]) -> list[Parsed]:
    records, _ = read_callback(inbound)
    if not records:
        raise BadRequest("no data[N] records", {"data": "required"})
    return [parse_record(record, f"data[{index}]") for index, record in enumerate(records)]


def reply(parsed: Parsed) -> Reply:
    return Reply(200, "100", "text/plain")  # anything else makes SMS.ru repeat the callback


def read_callback(inbound: Inbound) -> tuple[list[str], str | None]:
    """The ``data`` records in index order, and the posted ``hash``."""
    media_type = inbound.content_type.split(";")[0].strip().lower()
    if media_type not in ("application/x-www-form-urlencoded", ""):
        raise UnsupportedMediaType(f"unsupported content type {inbound.content_type!r}",
                                   {"content-type": "SMS.ru posts application/x-www-form-urlencoded"})
    indexed, appended, given = [], [], None
    for name, value in parse_qsl(inbound.body.decode("utf-8", "replace"), keep_blank_values=True):
        match = DATA_KEY.match(name)
        if match and match.group(1):
            indexed.append((int(match.group(1)), value))
        elif match:
            appended.append(value)
        elif name == "hash":
            given = value
    return [value for _, value in sorted(indexed, key=lambda pair: pair[0])] + appended, given


def parse_record(record: str, where: str) -> Parsed:
    lines = [line.strip() for line in record.splitlines()]
    kind = lines[0] if lines else ""
    fields = dict(zip(("type", "id", "status_code", "unix_time"), lines, strict=False))
    if kind != "sms_status":
        return Parsed(event_type=kind or "unknown", fields=fields,
                      ignore=f"unsupported event {kind or 'without a type'}")
    code = whole_or_none(lines[2]) if len(lines) >= 4 else None
    if code is None or not lines[1]:
        return Parsed(event_type="message.status", fields=fields, ignore=f"malformed record {where}")
    sms_id, unix_time = lines[1], lines[3]
    status = delivery_status(code)
    report = DeliveryReport(provider_message_id=sms_id, status=status, at=unix_time_iso(unix_time),
                            error=status_error(code) if status == "failed" else None)
    return Parsed(event_type="message.status", fields={**fields, "sms_id": sms_id},
                  delivery_key=f"{sms_id}:{code}", extra={"delivery": report})


def delivery_status(code: int) -> str:
    if code == DELIVERED:
        return "delivered"
    return "sent" if code in IN_TRANSIT else "failed"  # 104..108, 150 and unknown codes


def status_error(code: int) -> str:
    text = STATUS_TEXT.get(code)
    return f"SMS.ru status {code}: {text}" if text else f"SMS.ru status {code}"


# --- outbound ------------------------------------------------------------------------------

def send(message: Outgoing, settings: Mapping[str, Any]) -> Sent:
    """Sends one SMS; ``settings``: ``api_id``, optional ``from``, ``base_url``, ``timeout``.

    ``message.idempotency_key`` is not passed on: SMS.ru has no such parameter (see above).
    """
    if not settings.get("api_id"):
        raise PermanentFailure("SMS.ru sender needs api_id (api_id_env)")
    number = re.sub(r"\D", "", message.to)
    form = {"api_id": settings["api_id"], "to": number, "msg": message.text, "json": "1"}
    if settings.get("from"):
        form["from"] = settings["from"]
    url = (settings.get("base_url") or API_URL).rstrip("/") + "/sms/send"
    try:
        response = requests.post(url, data=form, timeout=settings.get("timeout") or 10.0)
    except requests.ReadTimeout as exc:
        raise Ambiguous(f"SMS.ru: no answer in time; {AMBIGUOUS}") from exc
    except requests.RequestException as exc:
        raise TemporaryFailure(f"SMS.ru: {type(exc).__name__}: {exc}") from exc
    return sent_or_failure(response, number)


def sent_or_failure(response: requests.Response, number: str) -> Sent:
    if response.status_code == 429 or response.status_code >= 500:
        raise TemporaryFailure(f"SMS.ru HTTP {response.status_code}", retry_after=retry_after(response))
    if not response.ok:
        raise PermanentFailure(f"SMS.ru HTTP {response.status_code}: {response.text[:200]}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise Ambiguous(f"SMS.ru answered HTTP {response.status_code} without JSON; {AMBIGUOUS}")
    if body.get("status") != "OK":
        raise failure(body)  # request-level: auth, sender, balance, service state
    entry = number_entry(body, number)
    if entry is not None and entry.get("status") != "OK":
        raise failure(entry)
    return Sent(provider_message_id=(entry or {}).get("sms_id"), status="queued")


def number_entry(body: Mapping[str, Any], number: str) -> dict | None:
    """The per-number answer for ``number`` (the only one when SMS.ru wrote it differently)."""
    numbers = body.get("sms") if isinstance(body.get("sms"), dict) else {}
    entry = numbers.get(number)
    if entry is None and len(numbers) == 1:
        entry = next(iter(numbers.values()))
    return entry if isinstance(entry, dict) else None


def failure(answer: Mapping[str, Any]) -> PermanentFailure | TemporaryFailure:
    try:
        code = int(answer.get("status_code"))
    except (TypeError, ValueError):
        code = 0
    text = f"SMS.ru {code}: {answer.get('status_text') or 'error'}"
    return TemporaryFailure(text) if code in TEMPORARY_CODES else PermanentFailure(text)


def retry_after(response: requests.Response) -> float | None:
    value = (response.headers.get("Retry-After") or "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the outbox backoff applies
