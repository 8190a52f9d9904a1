"""Generic webhook target (``crm: [{target: webhook, url: ..., secret_env: ...}]``): POSTs the
lead JSON, signed per Standard Webhooks (https://www.standardwebhooks.com/):

* ``webhook-id``: ``lead-<number>-<delivery>``, the same on every retry of one delivery, so the
  receiver can drop repeats. ``<delivery>`` is ``settings["delivery_id"]`` when the hub passes
  one; otherwise ``created`` for a create and, for an update, 16 hex digits of the SHA-256 of
  the lead without its ``sync`` list (which changes between attempts, the lead itself does not).
* ``webhook-timestamp``: integer Unix seconds of this attempt (receivers refuse stale ones).
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``; the key
  is the base64-decoded rest of a ``whsec_`` secret, else the secret's UTF-8 bytes. Without a
  secret the delivery goes unsigned.

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
from typing import Callable

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
    webhook_id = delivery_webhook_id(lead, settings, created=external_id is None)
    throttle()  # first: it may sleep, and the timestamp must be fresh when sent
    headers = {"Content-Type": "application/json", **signature_headers(
        webhook_id, int(time.time()), body, settings.get("secret"))}
    response = send(settings, body, headers)
    if response.status_code >= 300:
        raise failure(response)
    return external_id or _receiver_id(response) or webhook_id


def delivery_webhook_id(lead: dict, settings: dict, created: bool) -> str:
    delivery = settings.get("delivery_id")
    if not delivery and created:
        delivery = "created"
    elif not delivery:
        content = {key: value for key, value in lead.items() if key != "sync"}
        canonical = json.dumps(content, sort_keys=True, ensure_ascii=False).encode("utf-8")
        delivery = hashlib.sha256(canonical).hexdigest()[:16]
    return f"lead-{lead['number']}-{delivery}"


def signature_headers(webhook_id: str, timestamp: int, body: bytes, secret: str | None) -> dict:
    headers = {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp)}
    if secret:
        signed = f"{webhook_id}.{timestamp}.".encode("utf-8") + body
        digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
        headers["webhook-signature"] = "v1," + base64.b64encode(digest).decode("ascii")
    return headers


def signing_key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode("utf-8")
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except binascii.Error:
        pass
    raise PermanentFailure("webhook: the whsec_ secret is not valid base64")


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
