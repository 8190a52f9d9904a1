"""The Twilio voice connector, one test per fixture.

Fixtures: ``tests/fixtures/telephony/twilio/<event>__<variant>.urlencoded``, raw form bodies as
Twilio posts them. Each request is signed with the reference signer in tests/connectors/signers.py.
"""
import hashlib
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from connectors.base import BadRequest, CallState, Forbidden, Reply, Unauthorized
from connectors.telephony import twilio
from hub.mapping import load_mapping

TOKEN = "twilio-test-auth-token-0123456789"
URL = "https://hub.example.com/hooks/telephony/twilio?account=main"
SETTINGS = {"auth_token": TOKEN, "public_url": "https://hub.example.com"}
SID = "CAa1b2c3d4e5f60718293a4b5c6d7e8f90"
RECORDING = ("https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/"
             "Recordings/RE0123456789abcdef0123456789abcdef")
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@pytest.fixture
def delivery_defaults():
    return {"folder": "telephony/twilio", "url": URL, "key": TOKEN, "remote_addr": "54.172.60.1"}


@pytest.fixture
def receive(inbound):
    def verified_and_parsed(fixture: str):
        request = inbound(fixture)
        twilio.verify(request, SETTINGS)
        return twilio.parse(request, SETTINGS)

    return verified_and_parsed


def numbers(parsed) -> tuple[str | None, str | None]:
    """The mapped (lead phone, called number), E.164, with nothing invalid on the way."""
    result = mapped(parsed)
    assert result.invalid == {}
    return result.lead.get("phone"), result.source.get("called_number")


def mapped(parsed):
    return load_mapping(twilio.MAPPING).apply(parsed.fields, "RU")


def test_module_declares_the_protocol():
    assert (twilio.NAME, twilio.KIND, twilio.CHANNEL, twilio.MAPPING) == (
        "twilio", "telephony", "call", "telephony/twilio")
    assert twilio.SECRETS == ("auth_token_env", "shared_key_env")


def test_answered_inbound_call(receive):
    [parsed] = receive("status_completed__answered.urlencoded")
    assert (parsed.event_type, parsed.delivery_key, parsed.ignore) == (
        "call.completed", f"{SID}:completed:2", None)
    assert parsed.extra["touch_key"] == f"call:twilio:{SID}"
    assert parsed.extra["call"] == CallState(
        call_id=SID, direction="inbound", status="answered", final=True, seq=2.0, duration=107,
        recording_url=RECORDING)
    assert (parsed.fields["call.client"], parsed.fields["call.called"]) == ("+79161234567", "+74951234567")
    assert parsed.fields["CallerName"] == "Иван Петров"  # a UTF-8 value inside the signed body
    assert numbers(parsed) == ("+79161234567", "+74951234567")
    assert mapped(parsed).details == {
        "call_id": SID, "call_status": "completed", "direction": "inbound", "duration": 107,
        "recording_url": RECORDING, "caller_name": "Иван Петров",
        "event_at": "2025-03-14T07:24:56+00:00"}
    assert twilio.reply(parsed) == Reply(200, TWIML, "text/xml")


@pytest.mark.parametrize("fixture, status, seq", [
    ("status_ringing__inbound.urlencoded", "ringing", 0.0),
    ("status_in_progress__inbound.urlencoded", "in-progress", 1.0),
])
def test_progress_callbacks_are_not_final(receive, fixture, status, seq):
    [parsed] = receive(fixture)
    assert parsed.delivery_key == f"{SID}:{status}:{int(seq)}"
    expected = "ringing" if status == "ringing" else "in_progress"
    assert parsed.extra["call"] == CallState(call_id=SID, direction="inbound", status=expected, seq=seq)
    assert numbers(parsed) == ("+79161234567", "+74951234567")


def test_incoming_call_webhook_is_ringing_without_order(receive):
    [parsed] = receive("incoming_call__ringing.urlencoded")
    assert (parsed.event_type, parsed.delivery_key) == ("call.ringing", f"{SID}:ringing")
    assert parsed.extra["call"] == CallState(call_id=SID, direction="inbound", status="ringing")
    assert numbers(parsed) == ("+79161234567", "+74951234567")
    assert twilio.reply(parsed) == Reply(200, TWIML, "text/xml")


@pytest.mark.parametrize("fixture, status, sid, seq, phone", [
    ("status_no_answer__inbound.urlencoded", "no-answer", "CA00000000000000000000000000000003", 1,
     "+442079460958"),
    ("status_busy__inbound.urlencoded", "busy", "CA00000000000000000000000000000004", 1, "+79031112233"),
    ("status_canceled__inbound.urlencoded", "canceled", "CA00000000000000000000000000000005", 1,
     "+79035556677"),
    ("status_completed__zero_duration.urlencoded", "completed", "CA00000000000000000000000000000002", 2,
     "+79161234567"),
])
def test_missed_inbound_calls(receive, fixture, status, sid, seq, phone):
    [parsed] = receive(fixture)
    assert (parsed.event_type, parsed.delivery_key) == (f"call.{status}", f"{sid}:{status}:{seq}")
    assert parsed.extra["call"] == CallState(call_id=sid, direction="inbound", status="missed", final=True,
                                             seq=float(seq), duration=0)
    assert numbers(parsed) == (phone, "+74951234567")


def test_withheld_number_is_an_anonymous_missed_call(receive):
    [parsed] = receive("status_no_answer__withheld_number.urlencoded")
    call = parsed.extra["call"]
    assert (call.status, call.final, call.anonymous) == ("missed", True, True)
    assert "call.client" not in parsed.fields
    assert numbers(parsed) == (None, "+74951234567")


def test_anonymous_caller_answered(receive):
    [parsed] = receive("status_completed__anonymous.urlencoded")
    assert parsed.extra["call"] == CallState(
        call_id="CA00000000000000000000000000000007", direction="inbound", status="answered",
        final=True, seq=2.0, duration=31, anonymous=True)
    assert "call.client" not in parsed.fields
    assert numbers(parsed) == (None, "+74951234567")


def test_number_level_callback_is_ordered_by_its_timestamp(receive):
    [parsed] = receive("status_completed__number_level.urlencoded")
    assert parsed.delivery_key == "CA00000000000000000000000000000008:completed"
    moment = datetime(2025, 3, 14, 7, 30, 15, tzinfo=UTC).timestamp()
    assert parsed.extra["call"] == CallState(
        call_id="CA00000000000000000000000000000008", direction="inbound", status="answered",
        final=True, seq=moment, duration=95)
    assert numbers(parsed) == ("+79161234567", "+74951234567")


def test_outbound_api_call_has_the_dialled_client_and_no_called_number(receive):
    [parsed] = receive("status_completed__outbound_api.urlencoded")
    assert parsed.extra["call"] == CallState(
        call_id="CA00000000000000000000000000000009", direction="outbound", status="answered",
        final=True, seq=3.0, duration=64)
    assert parsed.fields["call.client"] == "+79169876543" and "call.called" not in parsed.fields
    assert numbers(parsed) == ("+79169876543", None)


def test_a_forwarded_leg_is_left_to_its_parent_call(receive):
    """A <Dial> leg rings a manager's phone; the client's call is the parent one."""
    [parsed] = receive("status_no_answer__outbound_dial.urlencoded")
    assert parsed.ignore == f"forwarded leg of call {SID}"
    assert "call" not in parsed.extra


def test_recording_after_the_end_only_adds_the_recording(receive):
    [parsed] = receive("recording_completed__after_end.urlencoded")
    assert (parsed.event_type, parsed.delivery_key) == (
        "recording", f"{SID}:recording:RE0123456789abcdef0123456789abcdef")
    assert parsed.extra["touch_key"] == f"call:twilio:{SID}"  # the answered call's touch
    assert parsed.extra["call"] == CallState(call_id=SID, direction="inbound", status="in_progress",
                                             recording_url=RECORDING)
    assert mapped(parsed).details["recording_url"] == RECORDING
    assert numbers(parsed) == (None, None)


def test_repeated_delivery_has_the_same_key(receive):
    first = receive("status_completed__answered.urlencoded")[0]
    again = receive("status_completed__answered.urlencoded")[0]
    assert first.delivery_key == again.delivery_key == f"{SID}:completed:2"
    assert first.extra["call"] == again.extra["call"]
    assert receive("status_in_progress__inbound.urlencoded")[0].delivery_key != first.delivery_key


def test_out_of_order_callbacks_sort_by_seq(receive):
    arrived = ["status_completed__answered.urlencoded", "status_ringing__inbound.urlencoded",
               "status_in_progress__inbound.urlencoded"]
    calls = [receive(name)[0].extra["call"] for name in arrived]
    assert [c.status for c in sorted(calls, key=lambda c: c.seq)] == ["ringing", "in_progress", "answered"]


def test_misrouted_sms_is_acknowledged_and_ignored(receive):
    [parsed] = receive("message__misrouted_sms.urlencoded")
    assert (parsed.event_type, parsed.ignore, parsed.delivery_key) == (
        "message", "unsupported event message", None)
    assert numbers(parsed) == (None, None)  # its From/To are not call numbers
    assert twilio.reply(parsed) == Reply(200, TWIML, "text/xml")


def test_missing_call_sid_is_a_bad_request(inbound):
    request = inbound("status_completed__missing_call_sid.urlencoded")
    assert twilio.verify(request, SETTINGS) is None
    with pytest.raises(BadRequest) as caught:
        twilio.parse(request, SETTINGS)
    assert caught.value.fields == {"CallSid": "required"}


def test_missing_signature_is_unauthorized(inbound):
    with pytest.raises(Unauthorized):
        twilio.verify(inbound("status_completed__answered.urlencoded", key=None), SETTINGS)
    with pytest.raises(Unauthorized):
        twilio.verify(inbound("status_completed__answered.urlencoded"), {"auth_token": None})


def test_wrong_or_tampered_signature_is_forbidden(inbound):
    with pytest.raises(Forbidden):
        twilio.verify(inbound("status_completed__answered.urlencoded", key="another-token"), SETTINGS)
    signed = inbound("status_completed__answered.urlencoded")
    tampered = replace(signed, body=signed.body.replace(b"CallDuration=107", b"CallDuration=0"))
    with pytest.raises(Forbidden):
        twilio.verify(tampered, SETTINGS)
    with pytest.raises(Forbidden):  # the query string is part of what Twilio signs
        twilio.verify(replace(signed, url=URL.replace("main", "other")), SETTINGS)


def test_signature_accepted_with_and_without_default_port(inbound):
    with_port = URL.replace("hub.example.com", "hub.example.com:443")
    signed_with_port = replace(inbound("status_completed__answered.urlencoded", url=with_port), url=URL)
    assert twilio.verify(signed_with_port, SETTINGS) is None
    called_with_port = replace(inbound("status_completed__answered.urlencoded"), url=with_port)
    assert twilio.verify(called_with_port, SETTINGS) is None


def test_a_status_callback_signed_with_a_shared_key_and_hmac_sha256(inbound):
    request = inbound("status_completed__answered.urlencoded", key="shared-key-secret", digest=hashlib.sha256,
                      x_twilio_webhooks_signature_settings="key=webhooks_sharedkey_01hx3k,algorithm=HMAC_SHA256")
    assert twilio.verify(request, {**SETTINGS, "shared_key": "shared-key-secret"}) is None
    with pytest.raises(Forbidden):
        twilio.verify(request, {**SETTINGS, "shared_key": TOKEN})
    assert twilio.parse(request, SETTINGS)[0].extra["call"].status == "answered"


def test_reply_is_empty_twiml_even_without_an_event():
    assert twilio.reply(None) == Reply(200, TWIML, "text/xml")
