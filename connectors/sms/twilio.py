"""Twilio Programmable Messaging: inbound SMS/MMS, message status callbacks, and sending.

Both webhooks arrive at ``/hooks/sms/twilio`` as form-encoded (or JSON) POSTs signed with
``X-Twilio-Signature`` over the public URL plus every posted parameter, or the body's hash
(see ``connectors.twilio_signature``; Twilio adds parameters without notice, so all of them
are signed and kept). A body with ``MessageStatus`` (or an
``SmsStatus`` other than ``received``) reports on a message we sent; anything else is a
message from a client. ``inbound.url`` is already rebuilt from the hub's ``public_url``.

Sending uses the Messages API (``POST /2010-04-01/Accounts/{sid}/Messages.json``).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from connectors import twilio_signature
from connectors.base import (
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
)

NAME = "twilio"
KIND = "sms"
CHANNEL = "sms"
MAPPING = "sms/twilio"
SECRETS = ("auth_token_env", "shared_key_env")
OPTIONAL_SECRETS = ("shared_key_env",)  # only for Webhook Settings' shared-key signatures
SETTINGS = SECRETS + ("account_sid", "account_sid_env")  # its sms.inbound section
SENDER_SETTINGS = ("account_sid_env", "auth_token_env", "from", "messaging_service_sid", "status_callback",
                   "base_url", "timeout")  # its sms.twilio section
METHODS = ("POST", "GET")  # POST by default, GET selectable in the console
# Sends carry I-Twilio-Idempotency-Token, but Twilio documents that header only for its own
# webhook retries, so a send whose answer was lost is not retried blindly (see hub.outbox).
IDEMPOTENT = False
HANDLES = ("message", "message.status")
IGNORES = ("call",)

API_URL = "https://api.twilio.com"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MEDIA_URL = re.compile(r"^MediaUrl(\d{1,2})$", re.ASCII)  # Twilio sends at most 10 media
DELIVERY_STATUS = {
    "delivered": "delivered", "read": "delivered",
    "failed": "failed", "undelivered": "failed", "canceled": "failed",
    "queued": "sent", "sending": "sent", "sent": "sent", "accepted": "sent", "scheduled": "sent",
}
STATUS_FIELDS = ("MessageSid", "MessageStatus", "SmsStatus", "ErrorCode", "ErrorMessage", "AccountSid")
QUEUED = ("queued", "accepted", "scheduled")


# --- inbound -------------------------------------------------------------------------------

def verify(inbound: Inbound, settings: Mapping[str, Any]) -> None:
    twilio_signature.verify_request(inbound, settings)
    account = settings.get("account_sid")
    if account and dict(twilio_signature.request_params(inbound)).get("AccountSid") != account:
        raise Forbidden("AccountSid is not the configured account", {"AccountSid": "unexpected"})


def parse(inbound: Inbound, settings: Mapping[str, Any]) -> list[Parsed]:
    fields = dict(twilio_signature.request_params(inbound))
    message_sid = fields.get("MessageSid", "").strip()
    if not message_sid:
        if fields.get("CallSid"):  # a voice webhook pointed at the messaging endpoint
            return [Parsed("call", fields, ignore="unsupported event call")]
        raise BadRequest("missing MessageSid", {"MessageSid": "required"})
    if is_status_callback(fields):
        return [status_event(message_sid, fields)]
    media = describe_media(fields)
    if media:
        fields["media"] = media
    return [Parsed(event_type="message", fields=fields, delivery_key=message_sid,
                   extra={"touch_key": f"sms:twilio:{message_sid}"})]


def reply(parsed: Parsed) -> Reply:
    # Empty TwiML: any text inside <Response> would be sent to the client as an SMS.
    return Reply(200, EMPTY_TWIML, "text/xml")


def is_status_callback(fields: Mapping[str, str]) -> bool:
    return bool(fields.get("MessageStatus")) or fields.get("SmsStatus", "received") != "received"


def status_event(message_sid: str, fields: Mapping[str, str]) -> Parsed:
    twilio_status = fields.get("MessageStatus") or fields.get("SmsStatus", "")
    # Unknown statuses (partially_delivered, new ones) claim nothing final: "sent".
    report = DeliveryReport(provider_message_id=message_sid,
                            status=DELIVERY_STATUS.get(twilio_status, "sent"),
                            error=error_text(fields))
    # Only the status fields: From/To of our own message must not map to a lead's phone.
    kept = {name: fields[name] for name in STATUS_FIELDS if name in fields}
    return Parsed(event_type="message.status", fields=kept,
                  delivery_key=f"{message_sid}:{twilio_status}", extra={"delivery": report})


def error_text(fields: Mapping[str, str]) -> str | None:
    code, message = fields.get("ErrorCode", "").strip(), fields.get("ErrorMessage", "").strip()
    if not code:
        return message or None
    return f"{code}: {message}" if message else code


def describe_media(fields: Mapping[str, str]) -> str:
    """``"url (image/jpeg), url (image/png)"`` in MediaUrl{N} order."""
    indexes = sorted((match.group(1) for name in fields if (match := MEDIA_URL.match(name))), key=int)
    items = []
    for index in indexes:  # as written: MediaUrl07 is not MediaUrl7
        url = fields[f"MediaUrl{index}"]
        content_type = fields.get(f"MediaContentType{index}", "")
        items.append(f"{url} ({content_type})" if content_type else url)
    return ", ".join(items)


# --- outbound ------------------------------------------------------------------------------

def send(message: Outgoing, settings: Mapping[str, Any]) -> Sent:
    """Sends one SMS through the Messages API.

    ``settings``: ``account_sid``, ``auth_token``, ``from`` or ``messaging_service_sid``,
    optional ``status_callback``, ``base_url``, ``timeout`` (seconds, default 10).
    The ``I-Twilio-Idempotency-Token`` header carries ``message.idempotency_key`` so a retry
    after a lost answer is not sent twice — best effort: Twilio documents the header for its
    own webhook retries, and our notes do not confirm the Messages API honours it.
    """
    account_sid, token = settings.get("account_sid"), settings.get("auth_token")
    if not account_sid or not token:
        raise PermanentFailure("Twilio sender needs account_sid and auth_token (auth_token_env)")
    base_url = (settings.get("base_url") or API_URL).rstrip("/")
    url = f"{base_url}/2010-04-01/Accounts/{account_sid}/Messages.json"
    headers = {"I-Twilio-Idempotency-Token": message.idempotency_key} if message.idempotency_key else {}
    try:
        response = requests.post(url, data=message_form(message, settings), headers=headers,
                                 auth=(account_sid, token), timeout=settings.get("timeout") or 10.0)
    except requests.RequestException as exc:
        raise TemporaryFailure(f"Twilio: {type(exc).__name__}: {exc}") from exc
    return sent_or_failure(response)


def message_form(message: Outgoing, settings: Mapping[str, Any]) -> dict[str, str]:
    form = {"To": message.to, "Body": message.text}
    if settings.get("messaging_service_sid"):
        form["MessagingServiceSid"] = settings["messaging_service_sid"]
    elif settings.get("from"):
        form["From"] = settings["from"]
    else:
        raise PermanentFailure("Twilio sender needs 'from' or 'messaging_service_sid'")
    if settings.get("status_callback"):
        form["StatusCallback"] = settings["status_callback"]
    return form


def sent_or_failure(response: requests.Response) -> Sent:
    if response.ok:
        body = json_object(response)  # an unreadable 2xx was still accepted: never resend
        status = "queued" if body.get("status") in QUEUED else "sent"
        return Sent(provider_message_id=body.get("sid"), status=status)
    if response.status_code == 429 or response.status_code >= 500:
        raise TemporaryFailure(describe_error(response), retry_after=retry_after(response))
    if response.status_code == 401:
        raise PermanentFailure(f"Twilio rejected the auth (HTTP 401, check account_sid and "
                               f"auth_token): {describe_error(response)}")
    raise PermanentFailure(describe_error(response))


def describe_error(response: requests.Response) -> str:
    body = json_object(response)
    if "code" in body or "message" in body:
        return f"Twilio {body.get('code')}: {body.get('message')}"
    return f"Twilio HTTP {response.status_code}: {response.text[:200]}"


def json_object(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), or ``None``."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
