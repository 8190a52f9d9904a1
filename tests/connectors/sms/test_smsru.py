"""SMS.ru: status callbacks (one test per fixture) and the sender.

Fixtures: ``tests/fixtures/sms/smsru/<event>__<variant>.urlencoded``, bodies as SMS.ru posts them
(``data[N]`` records and ``hash``), signed with ``API_ID`` below. The hash is recomputed with the
reference signer in tests/connectors/signers.py, independently of the module under test. Bodies
made up by a test are posted as the two-record callback is (``posted``).
"""
from dataclasses import replace
from urllib.parse import parse_qs, parse_qsl, urlencode

import pytest
import requests
import responses

from connectors.base import (
    Ambiguous,
    BadRequest,
    DeliveryReport,
    Forbidden,
    Outgoing,
    PermanentFailure,
    Reply,
    Sent,
    TemporaryFailure,
    Unauthorized,
)
from connectors.sms import smsru
from hub.mapping import load_mapping

from tests.connectors import signers

TWO_RECORDS = "sms_status__two_records.urlencoded"
API_ID = "1A2B3C4D-0000-1111-2222-333344445555"
SETTINGS = {"api_id": API_ID, "public_url": "https://hub.example.com"}


@pytest.fixture
def delivery_defaults():
    return {"folder": "sms/smsru"}


@pytest.fixture
def posted(inbound):
    """``posted(body)``: a callback with a body of the test's own."""
    return lambda body: replace(inbound(TWO_RECORDS), body=body)


def pairs_of(delivery) -> list[tuple[str, str]]:
    return parse_qsl(delivery.body.decode("utf-8"), keep_blank_values=True)


def test_module_declares_the_protocol():
    assert (smsru.NAME, smsru.KIND, smsru.CHANNEL, smsru.MAPPING) == ("smsru", "sms", "sms", "sms/smsru")
    assert smsru.SECRETS == ("api_id_env",)


def test_two_signed_status_records_become_two_delivery_reports(inbound):
    delivery = inbound(TWO_RECORDS)
    pairs = dict(pairs_of(delivery))
    assert pairs["hash"] == signers.smsru(API_ID, [pairs["data[0]"], pairs["data[1]"]])
    assert smsru.verify(delivery, SETTINGS) is None
    delivered, expired = smsru.parse(delivery, SETTINGS)
    assert (delivered.event_type, delivered.delivery_key) == ("message.status", "000000-10000001:103")
    assert delivered.extra == {"delivery": DeliveryReport(
        "000000-10000001", "delivered", error=None, at="2025-03-14T07:23:02+00:00")}
    assert expired.delivery_key == "000000-10000002:104"
    assert expired.extra["delivery"] == DeliveryReport(
        "000000-10000002", "failed", error="SMS.ru status 104: cannot be delivered: lifetime expired",
        at="2025-03-14T07:25:00+00:00")
    mapped = load_mapping("sms/smsru").apply(delivered.fields, "RU")
    assert (mapped.lead, mapped.details) == ({}, {"message_id": "000000-10000001", "status_code": "103"})
    assert smsru.reply(delivered) == Reply(200, "100", "text/plain")


def test_bad_or_missing_hash_is_refused(inbound, posted):
    pairs = pairs_of(inbound(TWO_RECORDS))
    records = [value for name, value in pairs if name != "hash"]
    wrong = urlencode([p for p in pairs if p[0] != "hash"] + [("hash", signers.smsru("other-id", records))])
    with pytest.raises(Forbidden) as error:
        smsru.verify(posted(wrong.encode()), SETTINGS)
    assert error.value.fields == {"hash": "invalid"}
    without = urlencode([p for p in pairs if p[0] != "hash"]).encode()
    with pytest.raises(Unauthorized):
        smsru.verify(posted(without), SETTINGS)
    with pytest.raises(Unauthorized):
        smsru.verify(inbound(TWO_RECORDS), {"api_id": None})


def test_callcheck_record_is_ignored_and_its_neighbour_kept(inbound):
    delivery = inbound("callcheck_status__mixed_batch.urlencoded")
    smsru.verify(delivery, SETTINGS)
    callcheck, status = smsru.parse(delivery, SETTINGS)
    assert (callcheck.event_type, callcheck.ignore) == ("callcheck_status", "unsupported event callcheck_status")
    assert (callcheck.delivery_key, callcheck.extra) == (None, {})
    assert status.ignore is None and status.delivery_key == "000000-10000003:102"
    assert status.extra["delivery"] == DeliveryReport("000000-10000003", "sent", at="2025-03-14T07:23:20+00:00")
    assert smsru.reply(callcheck) == Reply(200, "100", "text/plain")  # SMS.ru repeats anything else


def test_records_are_hashed_and_parsed_in_index_order_not_posted_order(posted):
    records = ["sms_status\nA-1\n103\n1741936982", "sms_status\nA-2\n150\n1741936983"]
    body = urlencode([("data[1]", records[1]), ("data[0]", records[0]),
                      ("hash", signers.smsru(API_ID, records))]).encode()
    smsru.verify(posted(body), SETTINGS)
    first, second = smsru.parse(posted(body), SETTINGS)
    assert (first.delivery_key, second.delivery_key) == ("A-1:103", "A-2:150")
    assert second.extra["delivery"].error == "SMS.ru status 150"


def test_malformed_record_is_acknowledged_not_failed(posted):
    body = urlencode([("data[0]", "sms_status\nA-1"), ("data[1]", "sms_status\nA-2\n103\n1741936982")])
    broken, good = smsru.parse(posted(body.encode()), SETTINGS)
    assert (broken.ignore, broken.delivery_key) == ("malformed record data[0]", None)
    assert good.extra["delivery"].status == "delivered"


def test_a_body_without_records_is_a_bad_request_naming_data(posted):
    with pytest.raises(BadRequest) as error:
        smsru.parse(posted(b"hash=abc"), SETTINGS)
    assert error.value.fields == {"data": "required"}


# --- sender --------------------------------------------------------------------------------

API = "https://sms.ru/sms/send"
SENDER = {"api_id": API_ID, "from": "LeadHub"}
MESSAGE = Outgoing(channel="sms", to="+7 916 123-45-67", text="Ваша заявка принята. Номер 42",
                   idempotency_key="lead-7-notification-9")


def answer(number_status: dict, top: str = "OK") -> dict:
    return {"status": top, "status_code": 100, "sms": {"79161234567": number_status}, "balance": 4122.56}


@responses.activate
def test_send_posts_digits_and_json_flag_and_returns_the_sms_id():
    responses.add(responses.POST, API, json=answer(
        {"status": "OK", "status_code": 100, "sms_id": "000000-10000000"}))
    assert smsru.send(MESSAGE, SENDER) == Sent(provider_message_id="000000-10000000", status="queued")
    assert parse_qs(responses.calls[0].request.body) == {
        "api_id": [API_ID], "to": ["79161234567"], "msg": ["Ваша заявка принята. Номер 42"],
        "json": ["1"], "from": ["LeadHub"]}


@responses.activate
def test_request_level_error_inside_http_200_is_permanent():
    responses.add(responses.POST, "http://smsru.test/sms/send", status=200, json={
        "status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"})
    with pytest.raises(PermanentFailure) as error:
        smsru.send(MESSAGE, {"api_id": "wrong", "base_url": "http://smsru.test/"})
    assert error.value.message == "SMS.ru 200: Неправильный api_id"
    assert "from" not in parse_qs(responses.calls[0].request.body)


@responses.activate
def test_per_number_error_inside_top_level_ok_is_permanent():
    text = "На этот номер (или один из номеров) нельзя отправлять сообщения"
    responses.add(responses.POST, API, json=answer(
        {"status": "ERROR", "status_code": 207, "status_text": text}))
    with pytest.raises(PermanentFailure) as error:
        smsru.send(MESSAGE, SENDER)
    assert error.value.message == f"SMS.ru 207: {text}"


@responses.activate
def test_service_temporarily_unavailable_code_is_temporary():
    responses.add(responses.POST, API, json={
        "status": "ERROR", "status_code": 220, "status_text": "Сервис временно недоступен"})
    with pytest.raises(TemporaryFailure) as error:
        smsru.send(MESSAGE, SENDER)
    assert error.value.message == "SMS.ru 220: Сервис временно недоступен"


@responses.activate
def test_http_429_is_temporary_with_retry_after():
    responses.add(responses.POST, API, status=429, headers={"Retry-After": "120"}, body="")
    with pytest.raises(TemporaryFailure) as error:
        smsru.send(MESSAGE, SENDER)
    assert (error.value.message, error.value.retry_after) == ("SMS.ru HTTP 429", 120.0)


@responses.activate
def test_http_503_is_temporary():
    responses.add(responses.POST, API, status=503, body="Service Unavailable")
    with pytest.raises(TemporaryFailure) as error:
        smsru.send(MESSAGE, SENDER)
    assert (error.value.message, error.value.retry_after) == ("SMS.ru HTTP 503", None)


@responses.activate
def test_connection_error_is_temporary():
    responses.add(responses.POST, API, body=requests.exceptions.ConnectionError("refused"))
    with pytest.raises(TemporaryFailure) as error:
        smsru.send(MESSAGE, SENDER)
    assert error.value.message == "SMS.ru: ConnectionError: refused"


@responses.activate
def test_read_timeout_is_ambiguous_and_not_retried():
    responses.add(responses.POST, API, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(Ambiguous) as error:
        smsru.send(MESSAGE, SENDER)
    assert "may have been sent" in error.value.message


@responses.activate
def test_http_200_without_json_is_ambiguous_and_not_retried():
    responses.add(responses.POST, API, status=200, body="100\n000000-10000000\nbalance=4122.56")
    with pytest.raises(Ambiguous) as error:
        smsru.send(MESSAGE, SENDER)
    assert "may have been sent" in error.value.message


def test_missing_api_id_is_permanent():
    with pytest.raises(PermanentFailure) as error:
        smsru.send(MESSAGE, {"api_id": None})
    assert "api_id" in error.value.message
