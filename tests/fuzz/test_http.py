"""Property tests through the real app: the intake endpoints and the JSON API, fed hostile
methods, paths, queries, headers and bodies. Never a 5xx; a 4xx stores nothing; and every
event that was accepted goes through the pipeline without failing (a lead is never lost to a
malformed field). Provider deliveries are signed with the providers' reference signers."""
from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from hub.pipeline import process_pending
from hub.store.models import RawEvent

from tests.connectors import signers
from tests.fuzz.strategies import (
    CHARSETS,
    FORM,
    FORM_FIELDS,
    JSON_VALUES,
    WIRE_TEXT,
    ZADARMA_NAMES,
    multipart,
    urlencoded,
)
from tests.fuzz.tally import tried

ZADARMA_SECRET, SMSRU_API_ID = "zadarma-test-secret-0123456789", "1A2B3C4D-0000-1111-2222-333344445555"
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)  # what HTTP carries
# Mostly what a provider would send (so the body reaches the parser), some of everything else.
FORM_KEYS = st.sampled_from(["landing", "tilda", "wordpress"] * 6 + ["", "%00", "..", "a/b", "é", "x" * 300])
METHODS = st.sampled_from(["POST"] * 12 + ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"])


@pytest.fixture
def open_limits(config_document, monkeypatch):
    """Every form and provider configured, and no rate limit: the inputs, not the limiter, are tested."""
    monkeypatch.setenv("ZADARMA_SECRET", ZADARMA_SECRET)
    monkeypatch.setenv("SMSRU_API_ID", SMSRU_API_ID)
    config_document["limits"] = {"requests_per_minute": 1_000_000, "body_bytes": 65536}
    config_document["telephony"] = {"zadarma": {"secret_env": "ZADARMA_SECRET"}}
    config_document["sms"]["inbound"] = {"smsru": {"api_id_env": "SMSRU_API_ID"}}


def stored(hub) -> int:
    hub.db.file_intake()  # on SQLite, from the intake journal into raw_events
    with hub.db.read() as session:
        return session.scalar(select(func.count()).select_from(RawEvent))


def send(client, hub, method: str, path: str, **kwargs) -> int:
    """One request; no 5xx, and a 4xx (or a 405) leaves the stored events as they were."""
    before = stored(hub)
    status = client.open(path, method=method, **kwargs).status_code
    tried(status)
    assert status < 500, (method, path, kwargs)
    if status >= 400:
        assert stored(hub) == before, (status, method, path)
    return status


def assert_nothing_lost(hub) -> None:
    """The pipeline takes every accepted event: processed into a lead or ignored with its reason."""
    process_pending(hub)
    with hub.db.read() as session:
        outcomes = dict(session.execute(select(RawEvent.status, func.count()).group_by(RawEvent.status)).all())
    assert set(outcomes) <= {"processed", "ignored"}, outcomes


@st.composite
def form_bodies(draw) -> dict:
    kind = draw(st.sampled_from(["urlencoded", "multipart", "json", "raw"]))
    charset = draw(CHARSETS.filter(lambda name: name.isascii() and name.isprintable()))
    suffix = f"; charset={charset}" if charset else ""
    if kind == "urlencoded":
        return {"data": urlencoded(draw(FORM_FIELDS)), "content_type": FORM + suffix}
    if kind == "multipart":
        return {"data": multipart(draw(FORM_FIELDS), draw(st.booleans())),
                "content_type": f"multipart/form-data; boundary=fuzzboundary{suffix}"}
    if kind == "json":
        contact = st.dictionaries(st.sampled_from(["phone", "email", "name"]), JSON_VALUES)
        document = draw(st.one_of(contact, JSON_VALUES))
        return {"data": json.dumps(document), "content_type": "application/json" + suffix}
    return {"data": draw(st.binary(max_size=200)),
            "content_type": draw(st.sampled_from(["", FORM, "multipart/form-data", "application/json"]))}


def test_form_intake(open_limits, client, hub):
    @given(method=METHODS, key=FORM_KEYS, body=form_bodies(), query=st.dictionaries(WIRE_TEXT, WIRE_TEXT, max_size=3),
           headers=st.dictionaries(st.sampled_from(["Referer", "Origin", "X-Hub-Secret", "Accept", "Content-Length"]),
                                   HEADER_TEXT, max_size=3))
    def post(method, key, body, query, headers):
        send(client, hub, method, f"/hooks/forms/{quote(key, safe='')}", query_string=urlencode(query),
             headers=headers, **body)

    post()
    assert_nothing_lost(hub)


@st.composite
def provider_requests(draw) -> tuple[str, str, dict]:
    provider = draw(st.sampled_from(["zadarma"] * 4 + ["smsru"] * 4 + ["zadarma-unsigned", "smsru-unsigned", "mango"]))
    method = draw(st.sampled_from(["POST"] * 8 + ["GET", "HEAD", "OPTIONS"]))
    if provider.startswith("zadarma"):
        fields = {"pbx_call_id": draw(WIRE_TEXT), **draw(st.dictionaries(ZADARMA_NAMES, WIRE_TEXT, max_size=8)),
                  "event": draw(st.sampled_from(sorted(signers.ZADARMA_SIGNED_FIELDS)))}
        body = urlencoded(fields)
        signature = signers.zadarma(body, ZADARMA_SECRET) if provider == "zadarma" else draw(HEADER_TEXT)
        query = draw(st.sampled_from(["", "zd_echo=abc", "zd_echo=" + quote("<b>x</b>")]))
        return method, f"/hooks/telephony/zadarma?{query}", {
            "data": body, "content_type": FORM, "headers": {"Signature": signature}}
    if provider.startswith("smsru"):
        records = draw(st.lists(st.lists(WIRE_TEXT, max_size=5).map("\n".join), min_size=1, max_size=3))
        given_hash = signers.smsru(SMSRU_API_ID, records) if provider == "smsru" else draw(HEADER_TEXT)
        body = urlencoded({**{f"data[{i}]": record for i, record in enumerate(records)}, "hash": given_hash})
        return method, "/hooks/sms/smsru", {"data": body, "content_type": FORM}
    return method, f"/hooks/telephony/{provider}/{quote(draw(WIRE_TEXT), safe='')}", {  # not configured: 404
        "data": urlencoded(draw(FORM_FIELDS)), "content_type": FORM}


def test_provider_intake(open_limits, client, hub):
    @given(request=provider_requests())
    def post(request):
        method, path, kwargs = request
        send(client, hub, method, path, **kwargs)

    post()
    assert_nothing_lost(hub)


IDS = st.one_of(st.just("1"), st.just("1"), st.integers(), WIRE_TEXT).map(lambda value: quote(str(value), safe=""))
API_CALLS = st.one_of(
    st.tuples(st.just("GET"), st.sampled_from(["/api/leads", "/api/events", "/api/openapi.json", "/healthz"])),
    st.tuples(st.just("GET"), st.one_of(IDS.map("/api/leads/{}".format), IDS.map("/api/events/{}".format))),
    st.tuples(st.just("PATCH"), IDS.map("/api/leads/{}".format)),
    st.tuples(st.just("POST"), IDS.map("/api/tasks/{}/done".format)),
    st.tuples(st.sampled_from(["DELETE", "PUT", "POST"]), st.sampled_from(["/api/leads", "/api/leads/1"])))
API_QUERY = st.dictionaries(st.sampled_from(["limit", "cursor", "status", "phone", "email", "channel", "kind",
                                             "provider", "utm_source"]), WIRE_TEXT, max_size=4)
API_BODIES = st.one_of(st.none(), JSON_VALUES.map(json.dumps), st.binary(max_size=100),
                       st.sampled_from(["[" * 10 + "]" * 10, "[" * 700 + "]" * 700, "[" * 10000,
                                        '{"outcome": "\\ud800"}',
                                        '{"status": ["new"]}', '{"assignee": {"id": 1}}', '{"status": "junk"}']))


def test_api(client, hub, api):
    client.post("/hooks/forms/landing", data={"phone": "+79161234567", "email": "a@b..c"})
    process_pending(hub)

    @given(call=API_CALLS, query=API_QUERY, body=API_BODIES,
           token=st.sampled_from(["valid"] * 8 + ["", "Bearer \xe9\xff", "Bearer x"]))
    def call(call, query, body, token):
        method, path = call
        headers = dict(api.headers) if token == "valid" else {"Authorization": token}
        response = client.open(path, method=method, query_string=urlencode(query), headers=headers,
                               data=body, content_type="application/json")
        tried(response.status_code)
        assert response.status_code < 500, (method, path, query, body)

    call()
    lead = api.get("/api/leads/1").get_json()
    assert lead["problems"] == {"email": "not an e-mail address: the domain is not a valid host name"}
