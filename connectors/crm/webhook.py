"""Generic webhook target (``crm: [{target: webhook, url: ..., secret_env: ...}]``): POSTs the
lead JSON, signed per Standard Webhooks (https://www.standardwebhooks.com/):

* ``webhook-id``: ``lead-<number>-<delivery>``, where ``<delivery>`` is
  ``settings["delivery_id"]``: the hub's random id of this delivery (a create, or one update),
  kept through its retries. So a receiver that drops repeated ids drops only repeats, even
  across several targets or a fresh database.
* ``webhook-timestamp``: integer Unix seconds of this attempt (receivers refuse stale ones).
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``. The key
  is read as the official Standard Webhooks libraries read it: the secret without its
  ``whsec_`` prefix (if any), base64-decoded, padding optional. Without a secret the delivery
  goes unsigned.

Answers: 2xx returns the receiver's ``id`` from a JSON body, else the webhook-id (an update
returns the external id it was given); 410 (the receiver is gone) and every other 4xx or a
redirect (not followed) raise ``PermanentFailure``; 408, 429, 5xx and network errors raise
``TemporaryFailure``. The URL is never quoted in an error (it may carry a token).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import requests

from connectors.base import PermanentFailure, TemporaryFailure

NAME = "webhook"
SECRETS = ("secret_env",)
OPTIONAL_SECRETS = SECRETS  # without one, deliveries go unsigned
SETTINGS = SECRETS + ("url",)  # its own keys in crm:
RATE = (10.0, 20)  # a polite default for a receiver we know nothing about
SECRET_PREFIX = "whsec_"


def push(lead: dict, settings: dict, external_id: str | None, attempt: int,
         throttle: Callable[[], None]) -> str:
    body = json.dumps(lead, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    webhook_id = f"lead-{lead['number']}-{settings['delivery_id']}"
    throttle()  # first: it may sleep, and the timestamp must be fresh when sent
    headers = {"Content-Type": "application/json", **signature_headers(
        webhook_id, int(time.time()), body, settings.get("secret"))}
    response = send(settings, body, headers)
    if response.status_code >= 300:
        raise failure(response)
    return external_id or _receiver_id(response) or webhook_id


def signature_headers(webhook_id: str, timestamp: int, body: bytes, secret: str | None) -> dict:
    headers = {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp)}
    if secret:
        signed = f"{webhook_id}.{timestamp}.".encode() + body
        digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
        headers["webhook-signature"] = "v1," + base64.b64encode(digest).decode("ascii")
    return headers


def signing_key(secret: str) -> bytes:
    """Like the official libraries: prefix dropped, base64 decoded leniently (characters outside
    the alphabet skipped, padding added), so both ends derive the same key from any secret."""
    key = None
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX) + "==")
    except binascii.Error:
        pass  # refused below with our own words: the decoder's would describe the secret
    if not key:
        raise PermanentFailure("webhook: the secret is not base64 (Standard Webhooks receivers "
                               "base64-decode it, with or without whsec_)")
    return key


def send(settings: dict, body: bytes, headers: dict) -> requests.Response:
    error = None
    try:
        return requests.post(settings["url"], data=body, headers=headers, allow_redirects=False,
                             timeout=settings.get("timeout", 10))
    except requests.RequestException as exc:
        error = f"webhook: {type(exc).__name__}"
    raise TemporaryFailure(error)  # outside the except: the cause's text quotes the URL


def failure(response: requests.Response) -> Exception:
    status = response.status_code
    message = f"webhook: HTTP {status} {response.reason or ''}".rstrip()
    detail = response.text.strip()[:200]
    if detail:
        message += f": {detail}"
    if status in (408, 429) or status >= 500:
        return TemporaryFailure(message, retry_after=_retry_after(response))
    if status == 410:
        return PermanentFailure(f"{message} (the receiver is gone: remove or fix this target)")
    return PermanentFailure(message)


def _receiver_id(response: requests.Response) -> str | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    return str(answer["id"]) if isinstance(answer, dict) and answer.get("id") else None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None
