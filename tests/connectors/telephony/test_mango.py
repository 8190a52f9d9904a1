"""The MANGO OFFICE VPBX realtime connector, one test per fixture.

Fixtures: ``tests/fixtures/telephony/mango/<path>__<variant>.urlencoded``, raw bodies
(``vpbx_api_key``, ``sign``, ``json``) signed with the test key and salt below, posted to the
event path (``events/call``) the harness reads from the fixture's name. Every fixture's ``sign``
is checked here against the reference signer in tests/connectors/signers.py.
"""
from dataclasses import replace
from urllib.parse import parse_qsl, urlencode

import pytest

from connectors.base import BadRequest, CallState, Forbidden, Reply, Unauthorized
from connectors.telephony import mango
from hub.mapping import load_mapping

from tests.connectors import signers
from tests.helpers import FIXTURES

KEY, SALT = "mango-test-api-key-0123456789", "mango-test-salt-abcdef"
SETTINGS = {"api_key": KEY, "api_salt": SALT, "public_url": "https://hub.example.com"}
ENTRY = "MzUyODMzNzkxMjo0MDE="
LEG = "MToxMjI3NTM6NDAxOjYyODMxMTI1OTox"


@pytest.fixture
def delivery_defaults():
    return {"folder": "telephony/mango", "remote_addr": "81.88.80.1"}


@pytest.fixture
def receive(inbound):
    def verified_and_parsed(fixture: str):
        request = inbound(fixture)
        mango.verify(request, SETTINGS)
        return mango.parse(request, SETTINGS)

    return verified_and_parsed


def resigned(body: bytes, key: str = KEY, salt: str = SALT, **fields: str) -> bytes:
    form = dict(parse_qsl(body.decode(), keep_blank_values=True)) | fields
    form["sign"] = signers.mango(form["json"], key, salt)
    return urlencode(form).encode()


def numbers(parsed) -> tuple[str | None, str | None]:
    """The mapped (lead phone, called number), E.164, with nothing invalid on the way."""
    result = mapped(parsed)
    assert result.invalid == {}
    return result.lead.get("phone"), result.source.get("called_number")


def mapped(parsed):
    return load_mapping(mango.MAPPING).apply(parsed.fields, "RU")


def test_module_declares_the_protocol():
    assert (mango.NAME, mango.KIND, mango.CHANNEL, mango.MAPPING) == (
        "mango", "telephony", "call", "telephony/mango")
    assert mango.SECRETS == ("api_key_env", "api_salt_env")


SIGNED_FIXTURES = sorted(f.name for f in (FIXTURES / "telephony" / "mango").iterdir() if not f.name.startswith("ping"))


@pytest.mark.parametrize("fixture", SIGNED_FIXTURES)
def test_fixture_signs_are_sha256_of_key_json_salt(inbound, fixture):
    form = dict(parse_qsl(inbound(fixture).body.decode(), keep_blank_values=True))
    assert form["vpbx_api_key"] == KEY
    assert form["sign"] == signers.mango(form["json"], KEY, SALT)


@pytest.mark.parametrize("fixture, seq, status, location, extension", [
    ("events_call__appeared.urlencoded", 1, "ringing", "ivr", None),
    ("events_call__connected.urlencoded", 2, "in_progress", "abonent", "101"),
    ("events_call__disconnected.urlencoded", 3, "in_progress", "abonent", "101"),
])
def test_leg_events_are_never_final(receive, fixture, seq, status, location, extension):
    [parsed] = receive(fixture)
    assert (parsed.event_type, parsed.delivery_key) == ("events/call", f"{ENTRY}:{LEG}:{seq}")
    assert parsed.extra["touch_key"] == f"call:mango:{ENTRY}"
    call = parsed.extra["call"]
    assert (call.call_id, call.direction, call.status, call.final, call.extension) == (
        ENTRY, "inbound", status, False, extension)
    assert call.seq == pytest.approx(int(parsed.fields["timestamp"]) + seq / 1000)
    assert numbers(parsed) == ("+79161234567", "+74951234567")
    assert (mapped(parsed).details["leg_id"], mapped(parsed).details["location"]) == (LEG, location)
    assert mango.reply(parsed) == Reply(200, "")


def test_answered_inbound_summary(receive):
    [parsed] = receive("events_summary__answered.urlencoded")
    assert (parsed.event_type, parsed.delivery_key) == ("events/summary", f"{ENTRY}:summary")
    assert parsed.extra["touch_key"] == f"call:mango:{ENTRY}"  # the legs' touch
    assert parsed.extra["call"] == CallState(call_id=ENTRY, direction="inbound", status="answered",
                                             final=True, seq=1741936951.0, duration=75, extension="101")
    assert numbers(parsed) == ("+79161234567", "+74951234567")
    assert mapped(parsed).details == {
        "call_id": ENTRY, "extension": "101", "entry_result": 1, "disconnect_reason": 1110,
        "started_at": "2025-03-14T07:21:07+00:00", "ended_at": "2025-03-14T07:22:30+00:00"}


@pytest.mark.parametrize("fixture, entry_id, phone, extension", [
    ("events_summary__missed.urlencoded", "NTAwMDAwMDAwMTo0MDE=", "+79031112233", "101"),
    # entry_result 1 but nobody talked (the IVR answered): talk_time wins
    ("events_summary__ivr_only.urlencoded", "NTAwMDAwMDAwMjo0MDE=", "+79035556677", None),
])
def test_missed_inbound_summaries(receive, fixture, entry_id, phone, extension):
    [parsed] = receive(fixture)
    assert parsed.delivery_key == f"{entry_id}:summary"
    call = parsed.extra["call"]
    assert (call.status, call.final, call.duration, call.extension, call.direction) == (
        "missed", True, 0, extension, "inbound")
    assert numbers(parsed) == (phone, "+74951234567")


def test_anonymous_caller(receive):
    [parsed] = receive("events_summary__anonymous.urlencoded")
    call = parsed.extra["call"]
    assert (call.status, call.anonymous) == ("missed", True)
    assert "call.client" not in parsed.fields
    assert numbers(parsed) == (None, "+74951234567")


def test_outbound_summary_has_the_dialled_client(receive):
    [parsed] = receive("events_summary__outbound.urlencoded")
    assert parsed.extra["call"] == CallState(call_id="NTAwMDAwMDAwNDo0MDE=", direction="outbound",
                                             status="answered", final=True, seq=1741937531.0, duration=120,
                                             extension="101")
    assert numbers(parsed) == ("+79169876543", None)


@pytest.mark.parametrize("fixture, event", [("events_summary__internal.urlencoded", "events/summary"),
                                            ("events_call__internal.urlencoded", "events/call")])
def test_internal_calls_are_ignored(receive, fixture, event):
    [parsed] = receive(fixture)
    assert (parsed.event_type, parsed.ignore, parsed.delivery_key, parsed.extra) == (
        event, "internal call", None, {})
    assert numbers(parsed) == (None, None)


def test_numbers_sent_as_strings(receive):
    [parsed] = receive("events_summary__string_numbers.urlencoded")
    assert parsed.extra["call"] == CallState(call_id="NTAwMDAwMDAwNjo0MDE=", direction="inbound",
                                             status="answered", final=True, seq=1741937701.0, duration=90,
                                             extension="103")
    assert numbers(parsed) == ("+79161234567", "+74951234567")  # from "+7…" and "8495…"


def test_recording_event_is_acknowledged_and_ignored(receive):
    [parsed] = receive("events_recording__started.urlencoded")
    assert (parsed.event_type, parsed.ignore, parsed.delivery_key) == (
        "events/recording", "unsupported event events/recording", None)
    assert mango.reply(parsed) == Reply(200, "")


def test_ping_is_a_handshake_without_signature(inbound):
    request = inbound("ping__check.urlencoded")
    assert mango.verify(request, {"api_key": None, "api_salt": None}) is None
    [parsed] = mango.parse(request, SETTINGS)
    assert (parsed.event_type, parsed.handshake) == ("ping", True)
    assert mango.reply(parsed) == Reply(200, "")


def test_invalid_json_is_a_bad_request(inbound):
    request = inbound("events_call__invalid_json.urlencoded")
    assert mango.verify(request, SETTINGS) is None  # the sign covers the raw string, valid or not
    with pytest.raises(BadRequest) as caught:
        mango.parse(request, SETTINGS)
    assert list(caught.value.fields) == ["json"]


def test_missing_entry_id_is_a_bad_request(receive):
    with pytest.raises(BadRequest) as caught:
        receive("events_summary__missing_entry_id.urlencoded")
    assert caught.value.fields == {"json.entry_id": "required"}


def test_repeated_and_out_of_order_events(receive):
    [first] = receive("events_call__connected.urlencoded")
    [again] = receive("events_call__connected.urlencoded")
    assert first.delivery_key == again.delivery_key == f"{ENTRY}:{LEG}:2"
    arrived = ["events_summary__answered.urlencoded", "events_call__disconnected.urlencoded",
               "events_call__appeared.urlencoded", "events_call__connected.urlencoded"]
    calls = sorted((receive(name)[0].extra["call"] for name in arrived), key=lambda c: c.seq)
    assert [(c.status, c.final) for c in calls] == [
        ("ringing", False), ("in_progress", False), ("in_progress", False), ("answered", True)]


def test_upper_case_sign_is_accepted(inbound):
    request = inbound("events_summary__answered.urlencoded")
    form = dict(parse_qsl(request.body.decode()))
    body = urlencode({**form, "sign": form["sign"].upper()}).encode()
    assert mango.verify(replace(request, body=body), SETTINGS) is None


def test_missing_sign_or_key_is_unauthorized(inbound):
    request = inbound("events_summary__answered.urlencoded")
    form = dict(parse_qsl(request.body.decode()))
    for dropped in ("sign", "vpbx_api_key"):
        body = urlencode({k: v for k, v in form.items() if k != dropped}).encode()
        with pytest.raises(Unauthorized):
            mango.verify(replace(request, body=body), SETTINGS)
    with pytest.raises(Unauthorized):
        mango.verify(request, {**SETTINGS, "api_salt": None})


def test_wrong_sign_or_foreign_key_is_forbidden(inbound):
    request = inbound("events_summary__answered.urlencoded")
    with pytest.raises(Forbidden):
        mango.verify(replace(request, body=resigned(request.body, salt="other-salt")), SETTINGS)
    with pytest.raises(Forbidden):  # correctly signed with another PBX's key
        foreign = resigned(request.body, key="other-key", vpbx_api_key="other-key")
        mango.verify(replace(request, body=foreign), SETTINGS)
    form = dict(parse_qsl(request.body.decode()))
    tampered = urlencode({**form, "json": form["json"].replace('"talk_time":1741936875', '"talk_time":0')})
    with pytest.raises(Forbidden):
        mango.verify(replace(request, body=tampered.encode()), SETTINGS)
