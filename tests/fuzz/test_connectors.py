"""Property tests over every provider module's ``verify`` and ``parse``, and the pipeline's
normalisation of what they return.

Whatever the fields hold (digits that are not ASCII, ten thousand digits, dates out of range,
lone surrogates, deep JSON, exotic charsets), a module either reads the delivery or raises
the ``ConnectorError`` that names the problem, and the mapping never raises at all: the hub
answers a 4xx, or keeps the value aside as a problem, and never a 5xx. Provider payloads are
signed with the reference signers (tests/connectors/signers.py), so the fuzzed values get past
``verify`` and reach ``parse``.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import quote, urlencode

from hypothesis import given
from hypothesis import strategies as st

from connectors.base import ConnectorError, Inbound
from connectors.mail import imap
from connectors.sms import smsru
from connectors.sms import twilio as twilio_sms
from connectors.telephony import mango, zadarma
from connectors.telephony import twilio as twilio_voice
from connectors.webforms import cf7, generic, tilda
from hub.config import load_config
from hub.pipeline.normalise import fingerprint, normalise_parsed

from tests.connectors import signers
from tests.fuzz.strategies import (
    ANY_TEXT,
    CHARSETS,
    FORM,
    FORM_FIELDS,
    FORM_NAMES,
    JSON_VALUES,
    WIRE_TEXT,
    ZADARMA_NAMES,
    multipart,
    urlencoded,
)
from tests.fuzz.tally import tried
from tests.helpers import MAILBOX_SETTINGS, sample_document

CONFIG = load_config(document=sample_document())
ZADARMA_IP, API_ID = "185.45.152.42", "1A2B3C4D-0000-1111-2222-333344445555"
MANGO_KEY, MANGO_SALT = "mango-test-api-key-0123456789", "mango-test-salt-abcdef"
VOICE_TOKEN, SMS_TOKEN = "twilio-test-auth-token-0123456789", "test-auth-token-0123456789abcdef"


def raw_event(module, endpoint: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(event_id="0" * 32, kind=module.KIND, endpoint=endpoint, override=None,
                           received_at=datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


def exercise(module, inbound: Inbound, settings: dict, endpoint: str | None = None, signed: bool = True):
    """verify + parse + the pipeline's normalisation: a ConnectorError naming what is wrong, or
    a result the hub can store and normalise. A signed delivery always passes ``verify``."""
    tried()
    try:
        if signed:
            module.verify(inbound, settings)
        else:
            try_verify(module, inbound, settings)
        parsed = module.parse(inbound, settings)
    except ConnectorError as error:
        assert 400 <= error.status < 500 and error.message and error.fields
        return []
    for index, item in enumerate(parsed):
        normalise_parsed(CONFIG, module, raw_event(module, endpoint), item, index)
        if module.KIND == "forms":
            fingerprint(endpoint, item.fields)
    return parsed


def try_verify(module, inbound: Inbound, settings: dict) -> None:
    try:
        module.verify(inbound, settings)
    except ConnectorError as error:
        assert error.status in (401, 403, 400, 415) and error.fields


# --- web forms -------------------------------------------------------------------------------

@st.composite
def form_deliveries(draw) -> Inbound:
    kind = draw(st.sampled_from(["urlencoded", "multipart", "json", "raw"]))
    charset = draw(CHARSETS)
    suffix = f"; charset={charset}" if charset else ""
    if kind == "urlencoded":
        content_type, body = FORM + suffix, urlencoded(draw(FORM_FIELDS))
    elif kind == "multipart":
        content_type = f"multipart/form-data; boundary=fuzzboundary{suffix}"
        body = multipart(draw(FORM_FIELDS), draw(st.booleans()))
    elif kind == "json":
        document = draw(st.one_of(st.dictionaries(FORM_NAMES, JSON_VALUES, max_size=6), JSON_VALUES))
        content_type, body = "application/json" + suffix, json.dumps(document).encode("ascii")
    else:
        content_type = draw(st.sampled_from(["", FORM, "multipart/form-data", "application/json", "text/xml"]))
        body = draw(st.binary(max_size=300))
    headers = {"content-type": content_type, **draw(st.dictionaries(
        st.sampled_from(["referer", "origin", "x-hub-secret"]), WIRE_TEXT, max_size=2))}
    return Inbound(method="POST", url="http://127.0.0.1/hooks/forms/landing", headers=headers, body=body)


@given(module=st.sampled_from([generic, tilda, cf7]), inbound=form_deliveries(),
       secret=st.sampled_from([None, "s3cret", "é-secret"]))
def test_form_modules_read_or_name_the_problem(module, inbound, secret):
    settings = {"key": "landing", "honeypot": "website", "secret": secret}
    exercise(module, inbound, settings, endpoint="landing", signed=False)


# --- telephony -------------------------------------------------------------------------------

ZADARMA_SETTINGS = {"secret": "zadarma-test-secret-0123456789", "allowed_ips": ["185.45.152.40/30"]}


@given(event=st.sampled_from(sorted(signers.ZADARMA_SIGNED_FIELDS)), call_id=WIRE_TEXT,
       fields=st.dictionaries(ZADARMA_NAMES, WIRE_TEXT, max_size=10))
def test_zadarma_signed_events(event, call_id, fields):
    body = urlencoded({"pbx_call_id": call_id, **fields, "event": event})
    signature = signers.zadarma(body, ZADARMA_SETTINGS["secret"])
    inbound = Inbound(method="POST", url="https://hub.example.com/hooks/telephony/zadarma", body=body,
                      headers={"content-type": FORM, "signature": signature}, remote_addr=ZADARMA_IP)
    exercise(zadarma, inbound, ZADARMA_SETTINGS)


@given(query=st.lists(st.tuples(st.sampled_from(["zd_echo", "x"]), ANY_TEXT), max_size=3),
       method=st.sampled_from(["GET", "HEAD", "POST"]), signature=st.sampled_from(["", "é", "\xff\xfe", "abc"]))
def test_zadarma_unsigned_requests(query, method, signature):
    inbound = Inbound(method=method, url="https://hub.example.com/hooks/telephony/zadarma", query=tuple(query),
                      headers={"signature": signature} if signature else {}, remote_addr=ZADARMA_IP)
    exercise(zadarma, inbound, ZADARMA_SETTINGS, signed=False)


MANGO_NUMBER = st.one_of(WIRE_TEXT, st.integers(), st.floats(), st.booleans(), st.none())
MANGO_PARTY = st.fixed_dictionaries({}, optional={"number": MANGO_NUMBER, "extension": MANGO_NUMBER,
                                                  "line_number": MANGO_NUMBER})
MANGO_DOCUMENT = st.fixed_dictionaries({}, optional={
    **{name: MANGO_NUMBER for name in ("entry_id", "call_id", "seq", "call_state", "timestamp", "call_direction",
                                       "talk_time", "end_time", "create_time", "entry_result", "line_number",
                                       "disconnect_reason")},
    "from": st.one_of(MANGO_PARTY, JSON_VALUES), "to": MANGO_PARTY, "x": JSON_VALUES})


@given(path=st.sampled_from(list(mango.HANDLES) + list(mango.IGNORES) + ["", "events/unknown"]),
       document=st.one_of(MANGO_DOCUMENT, JSON_VALUES), deep=st.sampled_from([0, 0, 0, 10, 700, 10000]))
def test_mango_signed_events(path, document, deep):
    text = "[" * deep + json.dumps(document) + "]" * deep
    body = urlencoded({"vpbx_api_key": MANGO_KEY, "sign": signers.mango(text, MANGO_KEY, MANGO_SALT), "json": text})
    inbound = Inbound(method="POST", url=f"https://hub.example.com/hooks/telephony/mango/{path}", subpath=path,
                      headers={"content-type": FORM}, body=body)
    exercise(mango, inbound, {"api_key": MANGO_KEY, "api_salt": MANGO_SALT})


VOICE_NAMES = st.sampled_from(["From", "To", "Caller", "Called", "Direction", "CallDuration", "Duration",
                               "SequenceNumber", "Timestamp", "RecordingSid", "RecordingStatus", "RecordingUrl",
                               "ParentCallSid", "MessageSid", "CallbackSource"])
VOICE_STATUS = st.one_of(st.sampled_from(sorted(twilio_voice.STATUS)), WIRE_TEXT)


@given(call_sid=WIRE_TEXT, status=VOICE_STATUS, fields=st.dictionaries(VOICE_NAMES, WIRE_TEXT, max_size=8),
       method=st.sampled_from(["POST", "GET"]))
def test_twilio_voice_signed_callbacks(call_sid, status, fields, method):
    params = {"CallSid": call_sid, "CallStatus": status, **fields}
    exercise(twilio_voice, twilio_request(params, method, "telephony", VOICE_TOKEN),
             {"auth_token": VOICE_TOKEN})


def twilio_request(params: dict, method: str, kind: str, token: str) -> Inbound:
    base = f"https://hub.example.com/hooks/{kind}/twilio"
    if method == "GET":
        url = f"{base}?{urlencode(params)}"
        return Inbound(method="GET", url=url, query=tuple(params.items()),
                       headers={"x-twilio-signature": signers.twilio(url, b"", token)})
    body = urlencoded(params)
    return Inbound(method="POST", url=base, body=body,
                   headers={"content-type": FORM, "x-twilio-signature": signers.twilio(base, body, token)})


# --- SMS -------------------------------------------------------------------------------------

SMS_NAMES = st.one_of(st.sampled_from(["From", "To", "Body", "MessageStatus", "SmsStatus", "NumMedia", "ErrorCode",
                                       "ErrorMessage", "AccountSid", "CallSid"]),
                      st.builds(lambda kind, index: kind + index, st.sampled_from(["MediaUrl", "MediaContentType"]),
                                st.sampled_from(["0", "1", "٣", "²", "9" * 5000, "07", ""])))


@given(message_sid=WIRE_TEXT, fields=st.dictionaries(SMS_NAMES, WIRE_TEXT, max_size=8),
       method=st.sampled_from(["POST", "GET"]))
def test_twilio_sms_signed_webhooks(message_sid, fields, method):
    params = {"MessageSid": message_sid, **fields}
    exercise(twilio_sms, twilio_request(params, method, "sms", SMS_TOKEN), {"auth_token": SMS_TOKEN})


SMSRU_RECORD = st.lists(st.one_of(st.sampled_from(["sms_status", "callcheck_status"]), WIRE_TEXT), max_size=5)


@given(records=st.lists(SMSRU_RECORD.map("\n".join), min_size=1, max_size=4))
def test_smsru_signed_callbacks(records):
    body = urlencoded({**{f"data[{index}]": record for index, record in enumerate(records)},
                       "hash": signers.smsru(API_ID, records)})
    exercise(smsru, Inbound(method="POST", url="https://hub.example.com/hooks/sms/smsru", body=body,
                            headers={"content-type": FORM}), {"api_id": API_ID})


@given(keys=st.lists(st.sampled_from(["data", "data[]", "data[0]", "data[٣]", "data[²]", "data[" + "9" * 5000 + "]",
                                      "data[-1]", "hash"]), max_size=5), value=WIRE_TEXT)
def test_smsru_unsigned_keys(keys, value):
    body = "&".join(f"{quote(key)}={quote(value)}" for key in keys).encode("ascii")
    exercise(smsru, Inbound(method="POST", url="https://hub.example.com/hooks/sms/smsru", body=body,
                            headers={"content-type": FORM}), {"api_id": API_ID}, signed=False)


# --- mail ------------------------------------------------------------------------------------

MAIL_HEADERS = st.sampled_from(["From", "Reply-To", "To", "Subject", "Date", "Message-ID", "In-Reply-To",
                                "References", "Content-Type", "Content-Transfer-Encoding", "Auto-Submitted"])
MAIL_VALUES = st.one_of(WIRE_TEXT, WIRE_TEXT, st.sampled_from([
    'text/plain; charset="utf\x00"', "text/plain; charset=idna", "text/plain; charset=unicode_escape",
    "=?utf\x00?q?x?=", "=?idna?b?w6nDqQ==?=", "=?unicode_escape?q?=5Cx?=",
    "multipart/mixed; boundary=b", "=?utf-8?b?0JjQstCw0L0=?= <ivan@example.com>", "=?x-unknown?q?a?=",
    "base64", "quoted-printable", "Ivan <a@b..c>", "<" + "m" * 400 + "@example.com>"]))


@given(headers=st.lists(st.tuples(MAIL_HEADERS, MAIL_VALUES), max_size=8), text=WIRE_TEXT,
       raw=st.one_of(st.none(), st.binary(max_size=400)))
def test_mail_messages(headers, text, raw):
    message = raw if raw is not None else (
        "".join(f"{name}: {value}\r\n" for name, value in headers) + f"\r\n{text}\r\n").encode("utf-8", "replace")
    inbound = Inbound(method="IMAP", url="imap://127.0.0.1/INBOX;UID=1", body=message,
                      headers={"content-type": "message/rfc822", "x-imap-internaldate": "2026-11-23T10:00:00+00:00"})
    exercise(imap, inbound, MAILBOX_SETTINGS, endpoint="sales", signed=False)
