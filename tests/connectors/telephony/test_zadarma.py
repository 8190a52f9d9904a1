"""The Zadarma PBX notification connector, one test per fixture.

Fixtures: ``tests/fixtures/telephony/zadarma/<event>__<variant>.urlencoded`` (raw POST bodies)
and ``echo__<variant>.query`` (the query string of the ``zd_echo`` GET). Each POST is signed
with the reference signer in tests/connectors/signers.py.
"""
import base64
from dataclasses import replace

import pytest

from connectors.base import BadRequest, CallState, Forbidden, Inbound, Reply, Unauthorized
from connectors.telephony import zadarma
from hub.mapping import load_mapping

SECRET = "zadarma-test-secret-0123456789"
URL = "https://hub.example.com/hooks/telephony/zadarma"
SETTINGS = {"secret": SECRET, "allowed_ips": ["185.45.152.40/30"], "public_url": "https://hub.example.com"}
ZADARMA_IP = "185.45.152.42"
IN_ID = "in_3f1c9a7e5b2d4c6e8a0f1b3d5c7e9a2b4d6f8a0c"
OUT_ID = "out_8b07dd1a7f2c9e4b6d3a5f1c0e8b2d4a6c9f1e3b"


@pytest.fixture
def delivery_defaults():
    return {"folder": "telephony/zadarma", "key": SECRET, "remote_addr": ZADARMA_IP}


@pytest.fixture
def receive(inbound):
    def verified_and_parsed(fixture: str):
        request = inbound(fixture)
        zadarma.verify(request, SETTINGS)
        return zadarma.parse(request, SETTINGS)

    return verified_and_parsed


def numbers(parsed) -> tuple[str | None, str | None]:
    """The mapped (lead phone, called number), E.164, with nothing invalid on the way."""
    result = mapped(parsed)
    assert result.invalid == {}
    return result.lead.get("phone"), result.source.get("called_number")


def mapped(parsed):
    return load_mapping(zadarma.MAPPING).apply(parsed.fields, "RU")


def test_module_declares_the_protocol():
    assert (zadarma.NAME, zadarma.KIND, zadarma.CHANNEL, zadarma.MAPPING) == (
        "zadarma", "telephony", "call", "telephony/zadarma")
    assert zadarma.SECRETS == ("secret_env",)


def test_signature_header_is_base64_of_the_hex_digest(inbound):
    header = inbound("notify_start__inbound.urlencoded").headers["signature"]
    assert len(header) == 56 and header.endswith("==")
    assert len(base64.b64decode(header)) == 40


def test_call_start_rings(receive):
    [parsed] = receive("notify_start__inbound.urlencoded")
    assert (parsed.event_type, parsed.delivery_key) == ("NOTIFY_START", f"{IN_ID}:NOTIFY_START")
    assert parsed.extra["touch_key"] == f"call:zadarma:{IN_ID}"
    assert parsed.extra["call"] == CallState(call_id=IN_ID, direction="inbound", status="ringing", seq=1.0)
    assert numbers(parsed) == ("+79161234567", "+74951234567")
    assert zadarma.reply(parsed) == Reply(200, "", "text/plain")


def test_call_offered_to_an_extension(receive):
    [parsed] = receive("notify_internal__offered.urlencoded")
    assert parsed.delivery_key == f"{IN_ID}:NOTIFY_INTERNAL:101"
    assert parsed.extra["call"] == CallState(call_id=IN_ID, direction="inbound", status="ringing", seq=2.0,
                                             extension="101")
    assert numbers(parsed) == ("+79161234567", "+74951234567")
    assert mapped(parsed).details == {"call_id": IN_ID, "event": "NOTIFY_INTERNAL",
                                      "call_start": "2025-03-14 10:21:07", "extension": "101"}


def test_answer_is_in_progress(receive):
    [parsed] = receive("notify_answer__inbound.urlencoded")
    assert parsed.delivery_key == f"{IN_ID}:NOTIFY_ANSWER:101"
    assert parsed.extra["call"] == CallState(call_id=IN_ID, direction="inbound", status="in_progress",
                                             seq=3.0, extension="101")
    assert numbers(parsed) == ("+79161234567", None)


def test_answered_inbound_call(receive):
    [parsed] = receive("notify_end__answered.urlencoded")
    assert (parsed.event_type, parsed.delivery_key) == ("NOTIFY_END", f"{IN_ID}:NOTIFY_END")
    assert parsed.extra["call"] == CallState(
        call_id=IN_ID, direction="inbound", status="answered", final=True, seq=4.0, duration=63,
        recording_url="zadarma:1741936867.2318457", extension="101")
    assert numbers(parsed) == ("+79161234567", "+74951234567")
    assert mapped(parsed).details == {"call_id": IN_ID, "event": "NOTIFY_END",
                                      "call_start": "2025-03-14 10:21:07",
                                      "disposition": "answered", "duration": 63, "extension": "101",
                                      "recording_id": "1741936867.2318457", "status_code": "16"}


@pytest.mark.parametrize("fixture, call_suffix, phone, extension", [
    # NOTIFY_END alone: the call ended in the IVR; the caller id in the 8XXXXXXXXXX form
    ("notify_end__no_answer_in_ivr.urlencoded", "a1", "+79161234567", None),
    ("notify_end__busy.urlencoded", "a2", "+79031112233", "102"),  # caller id as +7XXXXXXXXXX
    ("notify_end__cancel.urlencoded", "a3", "+79035556677", "101"),
    ("notify_end__answered_zero_duration.urlencoded", "a4", "+79037778899", None),
])
def test_missed_inbound_calls(receive, fixture, call_suffix, phone, extension):
    call_id = "in_" + "0" * 38 + call_suffix
    [parsed] = receive(fixture)
    assert parsed.delivery_key == f"{call_id}:NOTIFY_END"
    assert parsed.extra["call"] == CallState(call_id=call_id, direction="inbound", status="missed",
                                             final=True, seq=4.0, duration=0, extension=extension)
    assert numbers(parsed) == (phone, "+74951234567")


def test_anonymous_caller(receive):
    [parsed] = receive("notify_end__anonymous.urlencoded")
    call = parsed.extra["call"]
    assert (call.status, call.anonymous) == ("missed", True)
    assert "call.client" not in parsed.fields
    assert numbers(parsed) == (None, "+74951234567")


def test_outbound_call_start_and_end(receive):
    [start] = receive("notify_out_start__outbound.urlencoded")
    [end] = receive("notify_out_end__answered.urlencoded")
    assert start.extra["call"] == CallState(call_id=OUT_ID, direction="outbound", status="ringing",
                                            seq=1.0, extension="101")
    assert end.extra["call"] == CallState(call_id=OUT_ID, direction="outbound", status="answered",
                                          final=True, seq=4.0, duration=120, extension="101")
    assert start.extra["touch_key"] == end.extra["touch_key"] == f"call:zadarma:{OUT_ID}"
    for parsed in (start, end):  # the dialled client; our line is no called number
        assert numbers(parsed) == ("+79169876543", None)


def test_recording_after_the_end_only_adds_the_recording(receive):
    [parsed] = receive("notify_record__after_end.urlencoded")
    assert parsed.delivery_key == f"{IN_ID}:NOTIFY_RECORD:1741936867.2318457"
    assert parsed.extra["touch_key"] == f"call:zadarma:{IN_ID}"
    assert parsed.extra["call"] == CallState(call_id=IN_ID, direction="inbound", status="in_progress",
                                             seq=5.0, recording_url="zadarma:1741936867.2318457")
    assert numbers(parsed) == (None, None)
    assert mapped(parsed).details["recording_id"] == "1741936867.2318457"


def test_repeated_delivery_has_the_same_key(receive):
    [first], [again] = receive("notify_end__answered.urlencoded"), receive("notify_end__answered.urlencoded")
    assert first.delivery_key == again.delivery_key == f"{IN_ID}:NOTIFY_END"
    assert first.extra["call"] == again.extra["call"]


def test_out_of_order_events_sort_by_rank(receive):
    arrived = ["notify_record__after_end.urlencoded", "notify_end__answered.urlencoded",
               "notify_answer__inbound.urlencoded", "notify_start__inbound.urlencoded",
               "notify_internal__offered.urlencoded"]
    calls = sorted((receive(name)[0].extra["call"] for name in arrived), key=lambda c: c.seq)
    assert [c.status for c in calls] == ["ringing", "ringing", "in_progress", "answered", "in_progress"]
    assert [c.final for c in calls] == [False, False, False, True, False]


def test_echo_handshake_is_unsigned_and_echoed(inbound):
    request = inbound("echo__handshake.query", remote_addr="203.0.113.9")
    assert zadarma.verify(request, SETTINGS) is None  # no Signature, a foreign address
    [parsed] = zadarma.parse(request, SETTINGS)
    assert (parsed.event_type, parsed.handshake, parsed.extra) == ("echo", True, {"echo": "b8Qz1x7KfP3a"})
    assert zadarma.reply(parsed) == Reply(200, "b8Qz1x7KfP3a", "text/plain")


def test_hostile_echo_is_rejected(inbound):
    request = inbound("echo__hostile.query", remote_addr="203.0.113.9")
    with pytest.raises(Unauthorized):  # not a short token: no exemption from the signature
        zadarma.verify(request, {**SETTINGS, "allowed_ips": None})
    with pytest.raises(BadRequest) as caught:
        zadarma.parse(request, SETTINGS)
    assert "zd_echo" in caught.value.fields
    too_long = Inbound(method="GET", url=URL, query=(("zd_echo", "a" * 65),))
    with pytest.raises(BadRequest):
        zadarma.parse(too_long, SETTINGS)


def test_unsupported_events_are_acknowledged_and_ignored(receive):
    [parsed] = receive("notify_ivr__dtmf.urlencoded")
    assert (parsed.event_type, parsed.ignore, parsed.delivery_key) == (
        "NOTIFY_IVR", "unsupported event NOTIFY_IVR", None)
    assert numbers(parsed) == (None, None)
    assert zadarma.reply(parsed) == Reply(200, "", "text/plain")


@pytest.mark.parametrize("fixture", [
    "sms__incoming.urlencoded",  # result: a JSON object
    "sms__php_escaped_json.urlencoded",  # PHP's json_encode: \u escapes, a number, a leading +
    "sms__query_string_result.urlencoded",  # result: a query string
    "sms__php_array_fields.urlencoded",  # PHP's result[caller_id]=... form keys
])
def test_an_incoming_sms_is_an_sms_lead_whatever_the_result_encoding(receive, fixture):
    [parsed] = receive(fixture)
    assert (parsed.event_type, parsed.ignore, parsed.delivery_key) == ("SMS", None, None)
    assert parsed.extra == {"channel": "sms"}  # no message id: the hub keys the touch by event
    assert "call" not in parsed.extra
    result = mapped(parsed)
    assert result.invalid == {}
    assert result.lead == {"phone": "+79161234567", "message": "Перезвоните"}
    assert result.source == {"called_number": "+74951234567"}
    assert result.details == {"text": "Перезвоните", "event": "SMS"}
    assert zadarma.reply(parsed) == Reply(200, "", "text/plain")


def test_an_sms_whose_result_was_changed_is_forbidden(inbound):
    signed = inbound("sms__incoming.urlencoded")
    forged = replace(signed, body=signed.body.replace(b"79161234567", b"79990000000"))
    with pytest.raises(Forbidden):
        zadarma.verify(forged, SETTINGS)


def test_missing_pbx_call_id_is_a_bad_request(inbound):
    request = inbound("notify_end__missing_pbx_call_id.urlencoded")
    assert zadarma.verify(request, SETTINGS) is None
    with pytest.raises(BadRequest) as caught:
        zadarma.parse(request, SETTINGS)
    assert caught.value.fields == {"pbx_call_id": "required"}


def test_missing_signature_is_unauthorized(inbound):
    with pytest.raises(Unauthorized):
        zadarma.verify(inbound("notify_end__answered.urlencoded", key=None), SETTINGS)
    with pytest.raises(Unauthorized):
        zadarma.verify(inbound("notify_end__answered.urlencoded"), {**SETTINGS, "secret": None})


def test_wrong_signature_is_forbidden(inbound):
    with pytest.raises(Forbidden):
        zadarma.verify(inbound("notify_end__answered.urlencoded", key="other-secret"), SETTINGS)
    signed = inbound("notify_end__answered.urlencoded")
    moved = replace(signed, body=signed.body.replace(b"10%3A21%3A07", b"10%3A21%3A08"))  # call_start is signed
    with pytest.raises(Forbidden):
        zadarma.verify(moved, SETTINGS)


def test_unsigned_fields_can_be_altered_so_source_addresses_matter(inbound):
    signed = inbound("notify_end__answered.urlencoded")
    request = replace(signed, body=signed.body.replace(b"disposition=answered", b"disposition=busy"))
    assert zadarma.verify(request, SETTINGS) is None
    assert zadarma.parse(request, SETTINGS)[0].extra["call"].status == "missed"
    with pytest.raises(Forbidden):
        zadarma.verify(inbound("notify_end__answered.urlencoded", remote_addr="198.51.100.7"), SETTINGS)
    unrestricted = {**SETTINGS, "allowed_ips": None}
    assert zadarma.verify(inbound("notify_end__answered.urlencoded", remote_addr="198.51.100.7"),
                          unrestricted) is None
