"""Reference signers, one per provider that signs its deliveries, written from the providers'
documented formats and independent of the modules under test. Connector tests, hub tests and
the property tests all sign what they send with these."""
from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl

# The fields each Zadarma event signs, in this order (Zadarma's API documentation, "Call
# notification system - webhook": https://zadarma.com/en/support/api/#api_webhooks).
ZADARMA_SIGNED_FIELDS = {
    "NOTIFY_START": "caller_id called_did call_start", "NOTIFY_INTERNAL": "caller_id called_did call_start",
    "NOTIFY_END": "caller_id called_did call_start", "NOTIFY_IVR": "caller_id called_did call_start",
    "NOTIFY_ANSWER": "caller_id destination call_start",
    "NOTIFY_OUT_START": "internal destination call_start",
    "NOTIFY_OUT_END": "internal destination call_start",
    "NOTIFY_RECORD": "pbx_call_id call_id_with_rec", "SMS": "result",
}


def twilio(url: str, body: bytes, token: str, digest=hashlib.sha1) -> str:
    """X-Twilio-Signature: base64 of the HMAC of the URL followed by each form parameter's name
    and value, sorted by name; HMAC-SHA1 with the auth token, or the algorithm a Webhook
    Setting names with its shared key (https://www.twilio.com/docs/usage/webhooks/webhooks-security).
    A JSON webhook signs its URL alone (``body`` empty), the body's hash in ``bodySHA256``."""
    pairs = sorted(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    payload = url + "".join(name + value for name, value in pairs)
    mac = hmac.new(token.encode("utf-8"), payload.encode("utf-8"), digest).digest()
    return base64.b64encode(mac).decode("ascii")


def zadarma(body: bytes, secret: str) -> str:
    """The ``Signature`` header: base64 of the hex HMAC-SHA1 of the event's signed fields."""
    fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    message = "".join(fields.get(name, "") for name in ZADARMA_SIGNED_FIELDS[fields["event"]].split())
    hex_digest = hmac.new(secret.encode(), message.encode(), hashlib.sha1).hexdigest()
    return base64.b64encode(hex_digest.encode()).decode()


def mango(json_text: str, key: str, salt: str) -> str:
    """The ``sign`` field: hex SHA-256 of the API key, the ``json`` field as sent and the salt
    (MANGO OFFICE VPBX API, section 2.4.3)."""
    return hashlib.sha256((key + json_text + salt).encode()).hexdigest()


def smsru(api_id: str, records: list[str]) -> str:
    """The ``hash`` field of a status callback: hex SHA-256 of the api_id followed by data[0],
    data[1], ..."""
    return hashlib.sha256((api_id + "".join(records)).encode("utf-8")).hexdigest()
