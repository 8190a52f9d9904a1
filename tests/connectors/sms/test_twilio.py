"""Twilio SMS: inbound messages and status callbacks (one test per fixture), and the sender.

Fixtures: ``tests/fixtures/sms/twilio/<event>__<variant>.urlencoded``, the raw form bodies
Twilio posts to a messaging webhook and a status callback, and ``.json`` for a JSON webhook. Signatures
are computed with the reference signer in tests/connectors/signers.py, not with the module under
test.
"""
import base64
import hashlib
from dataclasses import replace
from urllib.parse import parse_qs, parse_qsl

import pytest
import requests
import responses

from connectors.base import (
    BadRequest,
    DeliveryReport,
    Forbidden,
    Inbound,
    Outgoing,
    PermanentFailure,
    Reply,
    Sent,
    TemporaryFailure,
    Unauthorized,
    UnsupportedMediaType,
)
from connectors.sms import twilio
from hub.mapping import load_mapping

from tests.connectors import signers

URL = "https://hub.example.com/hooks/sms/twilio"
TOKEN = "test-auth-token-0123456789abcdef"
ACCOUNT = "AC3f2b5e8a9c1d4e6f7a8b9c0d1e2f3a4b"
SETTINGS = {"auth_token": TOKEN, "account_sid": None, "public_url": "https://hub.example.com"}
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


SHARED_KEY = "webhook-setting-shared-key-secret"
SHA256_SETTINGS = {"x-twilio-webhooks-signature-settings":
                   "key=webhooks_sharedkey_01hx3k4m5n6p7q8r9s0t1v2w3x,algorithm=HMAC_SHA256"}


@pytest.fixture
def delivery_defaults():
    return {"folder": "sms/twilio", "url": URL, "key": TOKEN, "charset": "UTF-8"}


def test_module_declares_the_protocol():
    assert (twilio.NAME, twilio.KIND, twilio.CHANNEL, twilio.MAPPING) == (
        "twilio", "sms", "sms", "sms/twilio")
    assert twilio.SECRETS == ("auth_token_env", "shared_key_env")


def test_sms_is_a_lead_message_keyed_by_message_sid(inbound):
    delivery = inbound("message__sms.urlencoded")
    assert twilio.verify(delivery, SETTINGS) is None
    [parsed] = twilio.parse(delivery, SETTINGS)
    sid = "SM1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c"
    assert (parsed.event_type, parsed.delivery_key, parsed.ignore) == ("message", sid, None)
    assert parsed.extra == {"touch_key": f"sms:twilio:{sid}"}
    assert parsed.fields["Body"] == "Здравствуйте! Нужна консультация по CRM.\nПерезвоните после 18:00 "
    assert (parsed.fields["ApiVersion"], parsed.fields["NumMedia"]) == ("2010-04-01", "0")
    assert "media" not in parsed.fields
    mapped = load_mapping("sms/twilio").apply(parsed.fields, "RU")
    assert mapped.lead == {"phone": "+79161234567",
                           "message": "Здравствуйте! Нужна консультация по CRM.\nПерезвоните после 18:00"}
    assert mapped.source == {"called_number": "+74951234567"}
    assert mapped.details == {"message_id": sid, "text": mapped.lead["message"]}
    assert twilio.reply(parsed) == Reply(200, TWIML, "text/xml")


def test_mms_lists_both_media_items_for_the_details(inbound):
    delivery = inbound("message__mms.urlencoded")
    twilio.verify(delivery, SETTINGS)
    [parsed] = twilio.parse(delivery, SETTINGS)
    sid = "MM2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d"
    media = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}/Media/"
    expected = (f"{media}ME0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d (image/jpeg), "
                f"{media}ME9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c (image/png)")
    assert parsed.fields["media"] == expected
    assert parsed.extra["touch_key"] == f"sms:twilio:{sid}"
    mapped = load_mapping("sms/twilio").apply(parsed.fields, "RU")
    assert mapped.details == {"message_id": sid, "text": "Фото объекта", "media": expected}
    assert mapped.lead == {"phone": "+79161234567", "message": "Фото объекта"}


def test_delivered_status_callback_is_a_delivery_report(inbound):
    delivery = inbound("message_status__delivered.urlencoded")
    twilio.verify(delivery, SETTINGS)  # RawDlrDoneDate, not in our notes, is signed like the rest
    [parsed] = twilio.parse(delivery, SETTINGS)
    sid = "SM8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f"
    assert (parsed.event_type, parsed.delivery_key) == ("message.status", f"{sid}:delivered")
    assert parsed.extra == {"delivery": DeliveryReport(provider_message_id=sid, status="delivered")}
    assert "From" not in parsed.fields and "To" not in parsed.fields
    mapped = load_mapping("sms/twilio").apply(parsed.fields, "RU")
    assert (mapped.lead, mapped.source) == ({}, {})  # our own message makes no lead
    assert twilio.reply(parsed) == Reply(200, TWIML, "text/xml")


def test_undelivered_status_callback_is_failed_with_the_error_code(inbound):
    delivery = inbound("message_status__undelivered.urlencoded")
    twilio.verify(delivery, SETTINGS)
    [parsed] = twilio.parse(delivery, SETTINGS)
    sid = "SM8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f"
    assert parsed.delivery_key == f"{sid}:undelivered"
    assert parsed.extra["delivery"] == DeliveryReport(sid, "failed", error="30003")
    assert parsed.fields["ErrorCode"] == "30003"


@pytest.mark.parametrize("twilio_status, neutral", [
    ("delivered", "delivered"), ("read", "delivered"), ("failed", "failed"),
    ("undelivered", "failed"), ("canceled", "failed"), ("queued", "sent"), ("sending", "sent"),
    ("sent", "sent"), ("accepted", "sent"), ("scheduled", "sent"), ("partially_delivered", "sent"),
])
def test_status_values_map_to_neutral_statuses(twilio_status, neutral):
    body = f"MessageSid=SM1&MessageStatus={twilio_status}&SmsStatus={twilio_status}".encode()
    delivery = Inbound(method="POST", url=URL, body=body,
                       headers={"content-type": "application/x-www-form-urlencoded"})
    [parsed] = twilio.parse(delivery, SETTINGS)
    assert parsed.extra["delivery"] == DeliveryReport("SM1", neutral)
    assert parsed.delivery_key == f"SM1:{twilio_status}"


def test_legacy_sms_status_alone_marks_a_status_callback():
    delivery = Inbound(method="POST", url=URL, body=b"MessageSid=SM2&SmsStatus=sent",
                       headers={"content-type": "application/x-www-form-urlencoded"})
    [parsed] = twilio.parse(delivery, SETTINGS)
    assert (parsed.event_type, parsed.extra["delivery"]) == ("message.status", DeliveryReport("SM2", "sent"))


def test_bad_or_missing_signature_is_refused(inbound):
    with pytest.raises(Forbidden) as wrong_token:
        twilio.verify(inbound("message__sms.urlencoded", key="other"), SETTINGS)
    assert wrong_token.value.fields == {"X-Twilio-Signature": "invalid"}
    other_url = inbound("message__sms.urlencoded", url="https://hub.example.com/hooks/sms/other")
    with pytest.raises(Forbidden):
        twilio.verify(replace(other_url, url=URL), SETTINGS)
    with pytest.raises(Unauthorized):
        twilio.verify(inbound("message__sms.urlencoded", key=None), SETTINGS)
    with pytest.raises(Unauthorized):
        twilio.verify(inbound("message__sms.urlencoded"), {**SETTINGS, "auth_token": None})


def test_default_port_in_the_signed_url_is_accepted(inbound):
    signed_with_port = inbound("message__sms.urlencoded", url="https://hub.example.com:443/hooks/sms/twilio")
    assert twilio.verify(replace(signed_with_port, url=URL), SETTINGS) is None


def test_configured_account_sid_must_match(inbound):
    delivery = inbound("message__sms.urlencoded")
    assert twilio.verify(delivery, {**SETTINGS, "account_sid": ACCOUNT}) is None
    with pytest.raises(Forbidden) as error:
        twilio.verify(delivery, {**SETTINGS, "account_sid": "AC" + "0" * 32})
    assert error.value.fields == {"AccountSid": "unexpected"}


def test_missing_message_sid_is_a_bad_request_naming_it(inbound):
    delivery = inbound("message__missing_message_sid.urlencoded")
    twilio.verify(delivery, SETTINGS)  # correctly signed, still unusable
    with pytest.raises(BadRequest) as error:
        twilio.parse(delivery, SETTINGS)
    assert (error.value.message, error.value.fields) == ("missing MessageSid", {"MessageSid": "required"})


def test_a_voice_callback_sent_here_is_acknowledged_and_ignored():
    delivery = Inbound(method="POST", url=URL, body=b"CallSid=CA1&CallStatus=ringing",
                       headers={"content-type": "application/x-www-form-urlencoded"})
    [parsed] = twilio.parse(delivery, SETTINGS)
    assert (parsed.event_type, parsed.ignore, parsed.delivery_key) == ("call", "unsupported event call", None)


def test_an_xml_body_is_unsupported():
    delivery = Inbound(method="POST", url=URL, body=b"<MessageSid>SM1</MessageSid>",
                       headers={"content-type": "text/xml"})
    with pytest.raises(UnsupportedMediaType):
        twilio.parse(delivery, SETTINGS)


def test_a_json_webhook_signed_over_its_body_hash_is_the_same_message(inbound):
    delivery = inbound("message__sms_json.json")
    assert twilio.verify(delivery, {**SETTINGS, "account_sid": ACCOUNT}) is None
    [parsed] = twilio.parse(delivery, SETTINGS)
    [form] = twilio.parse(inbound("message__sms.urlencoded"), SETTINGS)
    assert (parsed.event_type, parsed.delivery_key, parsed.extra) == ("message", form.delivery_key, form.extra)
    assert parsed.fields == form.fields


def test_a_json_webhook_is_refused_when_its_body_does_not_match_the_hash(inbound):
    signed = inbound("message__sms_json.json")
    forged = replace(signed, body=signed.body.replace(b"+79161234567", b"+79990000000"))
    with pytest.raises(Forbidden) as caught:
        twilio.verify(forged, SETTINGS)
    assert caught.value.fields == {"bodySHA256": "does not match the body"}
    with pytest.raises(Forbidden) as wrong_key:
        twilio.verify(inbound("message__sms_json.json", key="other-token"), SETTINGS)
    assert wrong_key.value.fields == {"X-Twilio-Signature": "invalid"}


def test_a_shared_key_hmac_sha256_signature_is_accepted(inbound):
    settings = {**SETTINGS, "shared_key": SHARED_KEY}
    form = inbound("message__sms.urlencoded", key=SHARED_KEY, digest=hashlib.sha256, **SHA256_SETTINGS)
    assert twilio.verify(form, settings) is None
    json_webhook = inbound("message__sms_json.json", key=SHARED_KEY, digest=hashlib.sha256, **SHA256_SETTINGS)
    assert twilio.verify(json_webhook, settings) is None


@pytest.mark.parametrize("key, digest, settings, refusal", [
    (TOKEN, hashlib.sha256, {**SETTINGS, "shared_key": SHARED_KEY}, Forbidden),  # the auth token signed
    (SHARED_KEY, hashlib.sha1, {**SETTINGS, "shared_key": SHARED_KEY}, Forbidden),  # not the named algorithm
    (SHARED_KEY, hashlib.sha256, SETTINGS, Unauthorized),  # no shared key configured
])
def test_a_shared_key_signature_is_refused_unless_key_and_algorithm_match(inbound, key, digest, settings, refusal):
    with pytest.raises(refusal):
        twilio.verify(inbound("message__sms_json.json", key=key, digest=digest, **SHA256_SETTINGS), settings)


# --- sender --------------------------------------------------------------------------------

API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
SENDER = {"account_sid": ACCOUNT, "auth_token": TOKEN, "from": "+74951234567",
          "status_callback": "https://hub.example.com/hooks/sms/twilio"}
MESSAGE = Outgoing(channel="sms", to="+79161234567", text="Ваша заявка принята. Номер 42",
                   idempotency_key="lead-7-notification-9")
CREATED = {"sid": "SMaaaabbbbccccddddeeeeffff00001111", "account_sid": ACCOUNT, "status": "queued",
           "to": "+79161234567", "from": "+74951234567", "body": MESSAGE.text, "num_segments": "1",
           "direction": "outbound-api", "error_code": None, "error_message": None,
           "api_version": "2010-04-01"}


@responses.activate
def test_send_posts_the_form_with_basic_auth_and_idempotency_token():
    responses.add(responses.POST, API, json=CREATED, status=201)
    sent = twilio.send(MESSAGE, SENDER)
    assert sent == Sent(provider_message_id="SMaaaabbbbccccddddeeeeffff00001111", status="queued")
    request = responses.calls[0].request
    assert parse_qs(request.body) == {"To": ["+79161234567"], "From": ["+74951234567"],
                                      "Body": ["Ваша заявка принята. Номер 42"],
                                      "StatusCallback": ["https://hub.example.com/hooks/sms/twilio"]}
    expected_auth = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected_auth}"
    assert request.headers["I-Twilio-Idempotency-Token"] == "lead-7-notification-9"


@responses.activate
def test_send_through_a_messaging_service_at_a_configured_base_url():
    url = f"http://twilio.test:8080/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    responses.add(responses.POST, url, json={**CREATED, "status": "accepted"}, status=201)
    settings = {"account_sid": ACCOUNT, "auth_token": TOKEN, "base_url": "http://twilio.test:8080/",
                "messaging_service_sid": "MG0123456789abcdef0123456789abcdef"}
    message = Outgoing(channel="sms", to="+79161234567", text="Привет")
    assert twilio.send(message, settings).status == "queued"
    request = responses.calls[0].request
    assert parse_qs(request.body) == {"To": ["+79161234567"], "Body": ["Привет"],
                                      "MessagingServiceSid": ["MG0123456789abcdef0123456789abcdef"]}
    assert "I-Twilio-Idempotency-Token" not in request.headers


@responses.activate
def test_invalid_to_is_permanent_with_twilio_code_and_message():
    responses.add(responses.POST, API, status=400, json={
        "code": 21211, "message": "The 'To' number +7000 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400})
    with pytest.raises(PermanentFailure) as error:
        twilio.send(MESSAGE, SENDER)
    assert error.value.message == "Twilio 21211: The 'To' number +7000 is not a valid phone number."
    assert error.value.permanent is True


@responses.activate
def test_bad_credentials_are_permanent_and_say_auth():
    responses.add(responses.POST, API, status=401, json={
        "code": 20003, "message": "Authenticate", "status": 401})
    with pytest.raises(PermanentFailure) as error:
        twilio.send(MESSAGE, SENDER)
    assert "auth" in error.value.message and "20003" in error.value.message


@responses.activate
def test_rate_limit_is_temporary_and_honours_retry_after():
    responses.add(responses.POST, API, status=429, headers={"Retry-After": "30"}, json={
        "code": 20429, "message": "Too Many Requests", "status": 429})
    with pytest.raises(TemporaryFailure) as error:
        twilio.send(MESSAGE, SENDER)
    assert error.value.retry_after == 30.0
    assert error.value.message == "Twilio 20429: Too Many Requests"


@responses.activate
def test_server_error_is_temporary():
    responses.add(responses.POST, API, status=500, body="Internal Server Error")
    with pytest.raises(TemporaryFailure) as error:
        twilio.send(MESSAGE, SENDER)
    assert (error.value.retry_after, error.value.permanent) == (None, False)
    assert error.value.message == "Twilio HTTP 500: Internal Server Error"


@pytest.mark.parametrize("exception", [requests.exceptions.ReadTimeout("read timed out"),
                                       requests.exceptions.ConnectionError("connection refused")])
@responses.activate
def test_timeouts_and_network_errors_are_temporary(exception):
    responses.add(responses.POST, API, body=exception)
    with pytest.raises(TemporaryFailure) as error:
        twilio.send(MESSAGE, SENDER)
    assert error.value.message.startswith(f"Twilio: {type(exception).__name__}")


def test_missing_sender_settings_are_permanent():
    with pytest.raises(PermanentFailure) as no_token:
        twilio.send(MESSAGE, {**SENDER, "auth_token": None})
    assert "auth_token" in no_token.value.message
    with pytest.raises(PermanentFailure) as no_from:
        twilio.send(MESSAGE, {"account_sid": ACCOUNT, "auth_token": TOKEN})
    assert "messaging_service_sid" in no_from.value.message


def test_get_webhook_signs_the_url_alone_and_reads_the_query():
    url = f"{URL}?MessageSid=SM3&From=%2B79161234567&To=%2B74951234567&Body=hi&SmsStatus=received"
    query = tuple(parse_qsl(url.split("?", 1)[1]))
    delivery = Inbound(method="GET", url=url, query=query,
                       headers={"x-twilio-signature": signers.twilio(url, b"", TOKEN)})
    assert twilio.verify(delivery, SETTINGS) is None
    [parsed] = twilio.parse(delivery, SETTINGS)
    assert (parsed.event_type, parsed.delivery_key, parsed.fields["From"]) == ("message", "SM3", "+79161234567")
