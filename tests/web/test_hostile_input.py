"""Hostile and odd input at the intake and the API, case by case: each is a 4xx that names what
is wrong (and stores nothing), or a delivery taken with the bad value kept aside. Framing that
the Flask test client cannot produce (short bodies, chunked ones) goes through gunicorn on
loopback with raw sockets. Cases of one kind share a test (and its database, which costs more
than the cases on PostgreSQL); each assertion names its case."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlencode

import pytest
import yaml
from sqlalchemy import func, select

from hub.store.models import Lead, RawEvent

from tests.connectors import signers
from tests.helpers import free_port

SECRETS = {"ZADARMA_SECRET": "zadarma-test-secret", "TWILIO_AUTH_TOKEN": "twilio-test-token",
           "MANGO_API_KEY": "mango-key", "MANGO_API_SALT": "mango-salt", "SMSRU_API_ID": "smsru-api-id"}
FORM = "application/x-www-form-urlencoded"
PHONE = "+7 916 123-45-67"
CALL = {"event": "NOTIFY_END", "pbx_call_id": "in_1", "caller_id": "79161234567", "called_did": "74951234567",
        "call_start": "2026-11-23 13:00:00", "disposition": "answered", "duration": "95"}


@pytest.fixture
def providers(config_document, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    config_document["telephony"] = {"twilio": {"auth_token_env": "TWILIO_AUTH_TOKEN"},
                                    "zadarma": {"secret_env": "ZADARMA_SECRET"},
                                    "mango": {"api_key_env": "MANGO_API_KEY", "api_salt_env": "MANGO_API_SALT"}}
    config_document["sms"]["inbound"] = {"smsru": {"api_id_env": "SMSRU_API_ID"}}


def stored(hub, **where) -> int:
    hub.db.file_intake()  # on SQLite, from the intake journal into raw_events
    with hub.db.read() as session:
        query = select(func.count()).select_from(RawEvent)
        for key, value in where.items():
            query = query.where(getattr(RawEvent, key) == value)
        return session.scalar(query)


def refused(response, status: int, field: str, hub) -> dict:
    """A 4xx of the expected status whose ``fields`` names ``field``, and nothing stored."""
    body = response.get_json()
    assert (response.status_code, field in body["fields"], stored(hub)) == (status, True, 0), body
    return body["fields"]


def lead_of(api, response) -> dict:
    event = api.get(f"/api/events/{response.get_json()['event_id']}").get_json()
    assert event["status"] == "processed", event
    return api.get(f"/api/leads/{event['lead_number']}").get_json()


def zadarma(client, fields: dict):
    body = urlencode(fields).encode()
    return client.post("/hooks/telephony/zadarma", data=body, content_type=FORM,
                       headers={"Signature": signers.zadarma(body, SECRETS["ZADARMA_SECRET"])})


def twilio_voice(client, params: dict):
    body = urlencode(params).encode()
    signature = signers.twilio("http://localhost/hooks/telephony/twilio", body, SECRETS["TWILIO_AUTH_TOKEN"])
    return client.post("/hooks/telephony/twilio", data=body, content_type=FORM,
                       headers={"X-Twilio-Signature": signature})


def mango(client, document: str, path: str = "events/summary"):
    sign = signers.mango(document, SECRETS["MANGO_API_KEY"], SECRETS["MANGO_API_SALT"])
    form = {"vpbx_api_key": SECRETS["MANGO_API_KEY"], "sign": sign, "json": document}
    return client.post(f"/hooks/telephony/mango/{path}", data=urlencode(form), content_type=FORM)


# --- signatures ------------------------------------------------------------------------------

NON_ASCII_SIGNATURES = [
    ("/hooks/telephony/twilio", {"X-Twilio-Signature": "\xe9\xff=="}, {"CallSid": "CA1", "CallStatus": "ringing"}),
    ("/hooks/telephony/zadarma", {"Signature": "Zm9v\xe9"}, CALL),
    ("/hooks/telephony/mango/events/summary", {}, {"vpbx_api_key": SECRETS["MANGO_API_KEY"], "sign": "é" * 64,
                                                  "json": '{"entry_id": "1"}'}),
    ("/hooks/sms/smsru", {}, {"data[0]": "sms_status\n1\n103\n1741937100", "hash": "ü" * 64}),
]


def test_non_ascii_signatures_are_wrong_signatures(providers, client, hub):
    for path, headers, form in NON_ASCII_SIGNATURES:
        response = client.post(path, data=urlencode(form), content_type=FORM, headers=headers)
        assert response.status_code == 403 and response.get_json()["fields"], (path, response.data)
    assert stored(hub) == 0


# --- one bad optional field never loses a lead -----------------------------------------------

MALFORMED_EMAILS = ["olga@example..com", "olga@" + "x" * 64 + ".com", "olga@.example.com", "o" * 65 + "@example.com",
                    "olga@exam ple.com"]


def test_tilda_lead_with_a_valid_phone_and_a_malformed_email(client, run_jobs, api):
    answers = [client.post("/hooks/forms/tilda", data={"Phone": f"+7 916 123-45-6{index}", "Email": email,
                                                       "tranid": f"467251:{index}"})
               for index, email in enumerate(MALFORMED_EMAILS)]
    assert [answer.status_code for answer in answers] == [202] * len(MALFORMED_EMAILS)
    run_jobs()
    for index, (email, answer) in enumerate(zip(MALFORMED_EMAILS, answers, strict=True)):
        lead = lead_of(api, answer)
        assert (lead["phone"], lead["email"]) == (f"+7916123456{index}", None), email
        assert lead["problems"]["email"].startswith("not an e-mail address"), email
        assert {n["channel"] for n in lead["notifications"]} == {"sms"}, email  # nothing sent to the bad address
        assert lead["touches"][0]["details"]["fields"]["Email"] == email  # kept as sent


def test_optional_field_problems_do_not_refuse_a_form_with_required_phone(client, run_jobs, api):
    response = client.post("/hooks/forms/landing", data={"phone": PHONE, "email": "not-an-address"})
    assert response.status_code == 202
    run_jobs()
    assert lead_of(api, response)["problems"] == {"email": "not an e-mail address"}


def test_a_required_field_that_is_malformed_is_still_422(client, hub):
    response = client.post("/hooks/forms/landing", data={"phone": "call me", "email": "ivan@example.com"})
    assert refused(response, 422, "phone", hub) == {"phone": "not a phone number"}


def test_a_submission_without_any_usable_contact_is_ignored_as_before(client, run_jobs, api, hub):
    response = client.post("/hooks/forms/tilda", data={"Email": "olga@example..com", "tranid": "467251:2"})
    assert response.status_code == 202  # Tilda does not retry a 4xx: acknowledged, stored, no lead
    run_jobs()
    event = api.get(f"/api/events/{response.get_json()['event_id']}").get_json()
    assert (event["status"], event["lead_number"]) == ("ignored", None)
    assert "no contact" in event["error"]


def test_a_lead_with_no_problems_says_so(client, run_jobs, api):
    response = client.post("/hooks/forms/landing", data={"phone": PHONE, "email": "ivan@example.com"})
    run_jobs()
    assert lead_of(api, response)["problems"] == {}


# --- bodies ----------------------------------------------------------------------------------

def test_a_charset_that_is_no_web_charset_is_read_as_utf8(client, run_jobs, api):
    charsets = ["idna", "unicode_escape", "raw_unicode_escape", "x-no-such-charset", "rot13"]
    answers = [client.post("/hooks/forms/landing", content_type=f"{FORM}; charset={charset}",
                           data=urlencode({"name": f"Иван {charset}", "phone": f"+7 916 123-45-6{index}"}))
               for index, charset in enumerate(charsets)]
    assert [answer.status_code for answer in answers] == [202] * len(charsets)
    run_jobs()
    for charset, answer in zip(charsets, answers, strict=True):
        assert lead_of(api, answer)["name"] == f"Иван {charset}"


def test_lone_surrogates_in_json_keys_and_values(client, run_jobs, api):
    body = '{"name": "Iv\\ud800an", "phone": "+79161234567", "\\udfffnote": "x\\udc00"}'
    response = client.post("/hooks/forms/landing", data=body, content_type="application/json")
    assert response.status_code == 202
    run_jobs()
    lead = lead_of(api, response)
    assert lead["name"] == "Iv\ufffdan"
    assert lead["touches"][0]["details"]["fields"]["\ufffdnote"] == "x\ufffd"


def nested(depth: int) -> str:
    return '{"phone": "+79161234567", "utm": ' + '{"a": ' * depth + '"x"' + "}" * depth + "}"


def test_json_ten_levels_deep_is_taken(client):
    assert client.post("/hooks/forms/landing", data=nested(10), content_type="application/json").status_code == 202


def test_json_nested_hundreds_of_levels_deep_is_400(client, hub):
    for depth in [700, 10_000]:
        response = client.post("/hooks/forms/landing", data=nested(depth), content_type="application/json")
        assert refused(response, 400, "body", hub) == {"body": "not JSON: nested deeper than 32 levels"}, depth


def test_multipart_parts_without_a_name_are_left_out(client, run_jobs, api):
    body = (b"--b\r\nContent-Disposition: form-data; name=\"phone\"\r\n\r\n+79161234567\r\n"
            b"--b\r\nContent-Disposition: form-data\r\n\r\nno name\r\n"
            b"--b\r\nContent-Disposition: form-data; filename=\"cv.pdf\"\r\n\r\n%PDF\r\n--b--\r\n")
    response = client.post("/hooks/forms/landing", data=body, content_type="multipart/form-data; boundary=b")
    assert response.status_code == 202
    run_jobs()
    assert lead_of(api, response)["touches"][0]["details"]["fields"] == {"phone": "+79161234567"}


# --- provider numbers and times, behind valid signatures -------------------------------------

def test_zadarma_duration_that_is_no_whole_number_is_400(providers, client, hub):
    for duration in ["²", "٣", "1" * 5000, "-5", "95.0"]:
        response = zadarma(client, {**CALL, "duration": duration})
        assert refused(response, 400, "duration", hub) == {"duration": "invalid"}, duration


def test_twilio_numbers_and_times_out_of_range_are_400(providers, client, hub):
    cases = [("SequenceNumber", "²"), ("SequenceNumber", "9" * 4000), ("CallDuration", "١٢"),
             ("Timestamp", "Mon, 01 Jan 99999 00:00:00 +0000"),
             ("Timestamp", "Mon, 01 Jan 2026 00:00:00 +99999999999999999999")]
    for field, value in cases:
        params = {"CallSid": "CA1", "CallStatus": "completed", "From": "+79161234567", "To": "+74951234567",
                  field: value}
        assert refused(twilio_voice(client, params), 400, field, hub) == {field: "invalid"}, value[:40]


def test_mango_numbers_that_are_no_whole_numbers_are_400(providers, client, hub):
    for value in ['"²"', '"' + "1" * 3000 + '"', "1e400", "-3", '"NaN"']:
        document = f'{{"entry_id": "E1", "call_direction": 1, "talk_time": {value}, "end_time": 1741936951}}'
        assert refused(mango(client, document), 400, "json.talk_time", hub) == {"json.talk_time": "invalid"}, value


def test_nul_characters_in_a_signed_delivery_are_stored_and_processed(providers, client, hub, run_jobs, api):
    """PostgreSQL takes no NUL in text columns: keys and reasons built from provider fields drop them."""
    call_id = "in_\x00" + "x" * 400
    events = ("NOTIFY_START", "NOTIFY_END")
    answers = [zadarma(client, {**CALL, "pbx_call_id": call_id, "event": event}) for event in events]
    ignored = mango(client, '{"entry_id": "E\\u0000"}', path="events/%00unknown")  # subpath and reason
    assert [answer.status_code for answer in answers + [ignored]] == [200, 200, 200]
    run_jobs()
    assert stored(hub, status="processed") == 2 and stored(hub, status="ignored") == 1
    lead = api.get("/api/leads?phone=%2B79161234567").get_json()["items"][0]
    assert [touch["details"]["status"] for touch in lead["touches"]] == ["answered"]


def test_mango_json_nested_deep_is_400(providers, client, hub):
    assert "json" in refused(mango(client, "[" * 10_000 + "]" * 10_000), 400, "json", hub)


def test_smsru_records_with_odd_numbers_are_acknowledged_and_make_nothing(providers, client, hub, run_jobs):
    records = ["sms_status\nid-1\n²\n1741937100", "sms_status\nid-2\n103\n" + "9" * 40]
    response = client.post(
        "/hooks/sms/smsru",
        data={
            "data[0]": records[0],
            "data[1]": records[1],
            "data[" + "9" * 5000 + "]": "no record",
            "hash": signers.smsru(SECRETS["SMSRU_API_ID"], records),
        },
    )
    assert (response.status_code, response.data) == (200, b"100")  # SMS.ru repeats anything else
    run_jobs()
    assert stored(hub) == stored(hub, status="processed") + stored(hub, status="ignored") == 1


# --- methods ---------------------------------------------------------------------------------


def test_form_endpoints_take_post_only(client, hub):
    for method in ["GET", "HEAD", "PUT", "DELETE", "PATCH"]:
        response = client.open(
            "/hooks/forms/landing?phone=%2B79161234567&name=Get", method=method, data="phone=1", content_type=FORM
        )
        assert (response.status_code, response.headers["Allow"]) == (405, "POST, OPTIONS"), method
        assert method == "HEAD" or response.get_json()["fields"] == {"method": "use POST"}
    assert stored(hub) == 0


def test_provider_endpoints_take_what_the_provider_sends(providers, client, hub):
    cases = [
        ("GET", "/hooks/telephony/mango/events/call", "POST"),
        ("OPTIONS", "/hooks/telephony/zadarma", "POST, GET"),
        ("HEAD", "/hooks/telephony/zadarma?zd_echo=abc", "POST, GET"),
        ("GET", "/hooks/sms/smsru", "POST"),
        ("PUT", "/hooks/telephony/twilio", "POST, GET"),
    ]
    for method, path, allow in cases:
        response = client.open(path, method=method)
        assert (response.status_code, response.headers["Allow"]) == (405, allow), (method, path)
    assert stored(hub) == 0


def test_zadarma_echo_still_works(providers, client, hub):
    response = client.get("/hooks/telephony/zadarma?zd_echo=Ab_9-x")
    assert (response.status_code, response.data, stored(hub)) == (200, b"Ab_9-x", 0)


def test_form_preflight_still_works(client):
    response = client.options("/hooks/forms/landing", headers={"Origin": "http://localhost:8080"})
    assert (response.status_code, response.headers["Access-Control-Allow-Origin"]) == (204, "http://localhost:8080")


# --- the API ---------------------------------------------------------------------------------


def test_api_ids_beyond_64_bits_or_negative_are_404_naming_them(api):
    cases = [
        (api.get, "/api/leads/18446744073709551616", "number"),
        (api.get, "/api/leads/-1", "number"),
        (api.patch, "/api/leads/0", "number"),
        (api.get, "/api/leads/²", "number"),
        (api.post, "/api/tasks/99999999999999999999999/done", "task_id"),
        (api.post, "/api/tasks/-7/done", "task_id"),
    ]
    for method, path, field in cases:
        response = method(path, json={})
        assert (response.status_code, list(response.get_json()["fields"])) == (404, [field]), path


def test_api_cursors_and_limits_out_of_range_are_400(api):
    cases = [
        ("cursor=-1", "cursor"),
        ("cursor=18446744073709551616", "cursor"),
        ("cursor=" + "9" * 5000, "cursor"),
        ("limit=²", "limit"),
        ("limit=1e2", "limit"),
        ("limit=201", "limit"),
    ]
    for query, field in cases:
        response = api.get(f"/api/events?{query}")
        assert (response.status_code, list(response.get_json()["fields"])) == (400, [field]), query[:40]


def test_api_query_parameters_and_ids_holding_a_nul(api):
    """PostgreSQL refuses NUL in text: a filter holding one is a 400, an event id with one unknown."""
    for query in ["utm_source=%00", "email=a%00b", "channel=%00", "status=new%00"]:
        response = api.get(f"/api/leads?{query}")
        assert (response.status_code, list(response.get_json()["fields"])) == (400, [query.split("=")[0]]), query
    for query in ["kind=%00", "provider=x%00", "%00=1"]:
        assert api.get(f"/api/events?{query}").status_code == 400, query
    assert api.get("/api/events/%00").get_json()["fields"] == {"event_id": "unknown"}


def test_api_bodies_of_the_wrong_type_or_nesting_are_400(client, api, run_jobs):
    client.post("/hooks/forms/landing", data={"phone": PHONE})
    run_jobs()
    cases = [
        ("[]", "body"),
        ('"junk"', "body"),
        ('{"status": ["new"]}', "status"),
        ('{"assignee": {"id": "anna"}}', "assignee"),
        ("[" * 700 + "]" * 700, "body"),
        ("[" * 10_000, "body"),
        ("{nope", "body"),
        (b"\xff\xfe{", "body"),
    ]
    for body, field in cases:
        response = api.patch("/api/leads/1", data=body, content_type="application/json")
        assert (response.status_code, list(response.get_json()["fields"])) == (400, [field]), body[:40]
    assert api.get("/api/leads/1").get_json()["status"] == "new"


def test_task_outcome_with_a_lone_surrogate_is_stored_readable(client, api, run_jobs, hub):
    from hub.store.models import Task

    client.post("/hooks/forms/landing", data={"phone": PHONE})
    run_jobs()
    task_id = api.get("/api/leads/1").get_json()["tasks"][0]["id"]
    assert api.post(f"/api/tasks/{task_id}/done", data="[1]", content_type="application/json").status_code == 400
    closed = api.post(f"/api/tasks/{task_id}/done", data='{"outcome": "ok\\ud800"}', content_type="application/json")
    assert (closed.status_code, closed.get_json()["outcome"]) == (200, "ok\ufffd")
    with hub.db.read() as session:
        assert session.get(Task, task_id).outcome == "ok\ufffd"


# --- framing, through the real server (``hub web``) on loopback --------------------------------


@pytest.fixture
def server(hub, config_document, database_url, redis_url, tmp_path, logs):
    """``hub web`` (one worker) on a free loopback port, on the test's database; a body that
    stops arriving for a second is given up."""
    config_document.setdefault("limits", {})["body_timeout"] = "1s"
    config_path = tmp_path / "hub.yaml"
    config_path.write_text(yaml.safe_dump(config_document, allow_unicode=True), encoding="utf-8")
    port = free_port()
    env = {
        **os.environ,
        "HUB_CONFIG": str(config_path),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "HUB_PORT": str(port),
        "HUB_HOST": "127.0.0.1",
        "HUB_WEB_WORKERS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "web"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until_listening(port, process)
        yield port
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def wait_until_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("hub web did not start")


def exchange(port: int, head: str, body: bytes = b"", half_close: bool = True) -> tuple[int | None, dict | None]:
    """Send raw bytes, end our side (unless ``half_close`` is false: a client that waits), read
    the whole answer: (status, JSON body or None); (None, None) when nothing came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed before it read everything: read the answer
            pass
        answer = b""
        while not answered(answer, head.startswith("HEAD")) and (chunk := sock.recv(65536)):
            answer += chunk
    if not answer:
        return None, None
    status_line, _, rest = answer.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(payload) if payload.startswith(b"{") else None


def answered(answer: bytes, no_body: bool = False) -> bool:
    """A whole response with a Content-Length is in (the connection may stay open)."""
    head, found, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return bool(found and (no_body or (length and len(body) >= int(length.group(1)))))


def chunked(body: bytes, size: int = 65536) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


POST = "POST /hooks/forms/landing HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/x-www-form-urlencoded\n"


def test_framing_through_the_server(server, hub):
    form = urlencode({"name": "Ivan", "phone": PHONE}).encode()
    big = form + b"&message=" + b"x" * 3_000_000
    assert exchange(server, POST + "Transfer-Encoding: chunked\n", chunked(big)) == (
        413,
        {"error": "request body over the size limit of 1048576 bytes", "fields": {"body": "too large"}},
    )
    assert exchange(server, POST + "Content-Length: 200\n", form, half_close=False) == (
        400,
        {"error": "the body ended before its Content-Length", "fields": {"body": f"{len(form)} of 200 bytes arrived"}},
    )  # it stopped arriving
    assert exchange(server, POST + "Content-Length: 200\n", form) == (None, None)  # gone: nobody to answer
    partial = chunked(form, 7).rpartition(b"0\r\n\r\n")[0]  # chunks, but never the last one
    assert exchange(server, POST + "Transfer-Encoding: chunked\n", partial, half_close=False) == (
        400,
        {
            "error": "the body stopped arriving before its end",
            "fields": {"body": f"nothing more came after {len(form)} bytes"},
        },
    )
    assert exchange(server, POST + "Transfer-Encoding: chunked\n", b"zz\r\nphone=1\r\n0\r\n\r\n")[0] == 400
    for method in ("GET", "HEAD"):
        request = f"{method} /hooks/forms/landing?phone=%2B79161234567 HTTP/1.1\nHost: x\n"
        assert exchange(server, request, half_close=False)[0] == 405
    assert stored(hub) == 0
    status, answer = exchange(server, POST + "Transfer-Encoding: chunked\n", chunked(form, 7), half_close=False)
    assert (status, answer["status"], stored(hub)) == (202, "accepted", 1)  # chunked itself is fine
    with hub.db.read() as session:
        assert session.scalar(select(RawEvent.body)) == form
        assert session.scalar(select(func.count()).select_from(Lead)) == 0  # not processed here


def test_slow_clients_hold_no_worker(server, hub):
    """Twenty clients trickle their bodies a byte at a time into a single web worker; a normal
    form post meanwhile is answered at once, while every trickler is still mid-body."""
    head = POST + "Content-Length: 4000\n"
    tricklers = [socket.create_connection(("127.0.0.1", server), timeout=10) for _ in range(20)]
    try:
        for sock in tricklers:
            sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        for _ in range(10):  # two seconds of trickling before the normal post
            for sock in tricklers:
                sock.sendall(b"x")
            time.sleep(0.2)
        form = urlencode({"name": "Ivan", "phone": PHONE}).encode()
        started = time.monotonic()
        status, answer = exchange(server, POST + f"Content-Length: {len(form)}\n", form, half_close=False)
        print(f"a normal post beside 20 slow clients: {1000 * (time.monotonic() - started):.0f} ms")
        assert (status, answer["status"]) == (202, "accepted")
        for sock in tricklers:  # none of them was answered, and every one can still send
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
            sock.sendall(b"x")
    finally:
        for sock in tricklers:
            sock.close()
    assert stored(hub) == 1
