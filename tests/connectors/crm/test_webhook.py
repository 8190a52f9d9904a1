"""The generic webhook target: Standard Webhooks signing, stable ids, answer classification.

``verify`` below is written from the Standard Webhooks specification
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md),
independently of the module, and checked first against the specification's reference vector;
the official ``standardwebhooks`` package checks deliveries too, as a receiver would.
"""
import base64
import hashlib
import hmac
import json
import time

import pytest
import requests
import responses
from standardwebhooks import Webhook, WebhookVerificationError

from connectors.base import PermanentFailure, TemporaryFailure
from connectors.crm import webhook

URL = "https://receiver.example.com/leads?token=url-t0ken-42"
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OTHER_WHSEC = "whsec_" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()
LEAD = {
    "number": 123, "status": "new", "name": "Иван Иванов", "phone": "+79161234567",
    "email": "ivan@example.com", "message": "Нужен счёт", "channel": "form",
    "source": {"utm_source": "yandex", "form": "landing"}, "touches": [],
    "assignee": {"id": "anna", "name": "Anna Petrova"},
    "sync": [{"target": "webhook", "external_id": None, "status": "pending"}],
}
VECTOR = {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
          "timestamp": "1614265330", "body": b'{"test": 2432232314}',
          "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}


def verify(secret: str, headers, body: bytes, now: float, tolerance: int = 300) -> bool:
    """A receiver's check: the signed content is "<id>.<timestamp>.<body>"; the key is the
    secret without its whsec_ prefix, base64-decoded; the header holds space-separated
    "v1,<base64>" entries; timestamps outside the tolerance are refused."""
    timestamp = headers["webhook-timestamp"]
    if abs(now - int(timestamp)) > tolerance:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = headers["webhook-id"].encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    offered = [entry.split(",", 1) for entry in headers.get("webhook-signature", "").split(" ")]
    return any(version == "v1" and hmac.compare_digest(sig, expected) for version, sig in offered)


def test_the_verifier_and_the_signer_agree_with_the_reference_vector():
    headers = {"webhook-id": VECTOR["id"], "webhook-timestamp": VECTOR["timestamp"],
               "webhook-signature": VECTOR["signature"]}
    assert verify(VECTOR["secret"], headers, VECTOR["body"], now=1614265330)
    assert not verify(VECTOR["secret"], headers, VECTOR["body"] + b" ", now=1614265330)
    signed = webhook.signature_headers(VECTOR["id"], 1614265330, VECTOR["body"], VECTOR["secret"])
    assert signed == headers


def test_module_declares_the_protocol():
    assert (webhook.NAME, webhook.SECRETS) == ("webhook", ("secret_env",))


@pytest.mark.parametrize("secret", ["whsec_not*base64", "plain shared secret", "whsec_", "----"])
def test_a_secret_receivers_cannot_decode_is_permanent_and_not_echoed(api, secret):
    with pytest.raises(PermanentFailure) as caught:
        webhook.push(LEAD, {"url": URL, "secret": secret, "delivery_id": "d1"}, None, 1, lambda: None)
    assert caught.value.message == ("webhook: the secret is not base64 (Standard Webhooks receivers "
                                    "base64-decode it, with or without whsec_)")
    assert caught.value.__context__ is None
    assert len(api.calls) == 0


def test_a_create_posts_the_lead_signed_so_a_receiver_can_verify_it(api):
    api.add(responses.POST, URL, status=204)
    calls = []
    settings = {"url": URL, "secret": WHSEC, "delivery_id": "3f9a0c"}

    assert webhook.push(LEAD, settings, None, 1, lambda: calls.append(1)) == "lead-123-3f9a0c"

    request = api.calls[0].request
    assert calls == [1] and len(api.calls) == 1
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body.decode("utf-8")) == LEAD
    assert request.headers["webhook-id"] == "lead-123-3f9a0c"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    assert verify(WHSEC, request.headers, request.body, now=time.time())
    assert not verify(OTHER_WHSEC, request.headers, request.body, now=time.time())


@pytest.mark.parametrize("secret", [
    WHSEC,
    WHSEC.removeprefix("whsec_"),  # the same key without the prefix
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # unpadded: the libraries add the padding
    "my-webhook-secret",  # a plain secret: decoded as base64 all the same, "-" skipped
])
def test_the_official_standardwebhooks_library_verifies_a_delivery(api, secret):
    api.add(responses.POST, URL, status=204)
    webhook.push(LEAD, {"url": URL, "secret": secret, "delivery_id": "3f9a0c"}, None, 1, lambda: None)
    request = api.calls[0].request
    headers = dict(request.headers)

    assert Webhook(secret).verify(request.body, headers) == LEAD
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_WHSEC).verify(request.body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"123", b"124"), headers)


def test_without_a_secret_the_delivery_goes_unsigned(api):
    api.add(responses.POST, URL, status=200)
    webhook.push(LEAD, {"url": URL, "delivery_id": "3f9a0c"}, None, 1, lambda: None)
    headers = api.calls[0].request.headers
    assert "webhook-signature" not in headers and headers["webhook-id"] == "lead-123-3f9a0c"


def test_a_retry_keeps_the_webhook_id_and_signs_afresh(api):
    api.add(responses.POST, URL, status=500, body="oops")
    api.add(responses.POST, URL, status=200, json={"id": "rcv-9"})
    settings = {"url": URL, "secret": WHSEC, "delivery_id": "d-77"}
    with pytest.raises(TemporaryFailure) as caught:
        webhook.push(LEAD, settings, None, 1, lambda: None)
    assert caught.value.message == "webhook: HTTP 500 Internal Server Error: oops"

    assert webhook.push(LEAD, settings, None, 2, lambda: None) == "rcv-9"

    first, second = (call.request.headers for call in api.calls)
    assert first["webhook-id"] == second["webhook-id"] == "lead-123-d-77"
    assert verify(WHSEC, second, api.calls[1].request.body, now=time.time())


def test_an_update_returns_the_external_id(api):
    api.add(responses.POST, URL, status=200, json={"id": "rcv-other"})
    assert webhook.push(LEAD, {"url": URL, "delivery_id": "d2"}, "rcv-9", 1, lambda: None) == "rcv-9"


@pytest.mark.parametrize("fake,failure,message,retry_after", [
    ({"status": 410, "body": ""}, PermanentFailure,
     "webhook: HTTP 410 Gone (the receiver is gone: remove or fix this target)", None),
    ({"status": 400, "json": {"error": "phone is required"}}, PermanentFailure,
     'webhook: HTTP 400 Bad Request: {"error": "phone is required"}', None),
    ({"status": 401, "body": "bad signature"}, PermanentFailure, "webhook: HTTP 401 Unauthorized: bad signature", None),
    ({"status": 301, "headers": {"Location": "https://elsewhere.example/"}}, PermanentFailure,
     "webhook: HTTP 301 Moved Permanently", None),
    ({"status": 429, "headers": {"Retry-After": "5"}}, TemporaryFailure, "webhook: HTTP 429 Too Many Requests", 5.0),
    ({"status": 503, "body": ""}, TemporaryFailure, "webhook: HTTP 503 Service Unavailable", None),
])
def test_answers_are_classified(api, fake, failure, message, retry_after):
    api.add(responses.POST, URL, **fake)
    with pytest.raises(failure) as caught:
        webhook.push(LEAD, {"url": URL, "secret": WHSEC, "delivery_id": "d3"}, None, 1, lambda: None)
    assert type(caught.value) is failure
    assert (caught.value.message, caught.value.retry_after) == (message, retry_after)
    assert len(api.calls) == 1  # a redirect is not followed


@pytest.mark.parametrize("error", [requests.exceptions.ConnectTimeout, requests.exceptions.ConnectionError])
def test_network_errors_are_temporary_and_never_quote_the_url(api, error):
    api.add(responses.POST, URL, body=error(f"Max retries exceeded with url: {URL}"))
    with pytest.raises(TemporaryFailure) as caught:
        webhook.push(LEAD, {"url": URL, "secret": WHSEC, "delivery_id": "d3"}, None, 1, lambda: None)
    assert caught.value.message == f"webhook: {error.__name__}"
    assert caught.value.__context__ is None and "url-t0ken-42" not in str(caught.value)
