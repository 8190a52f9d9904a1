"""Intake through the real Flask app: answers, errors and what gets stored."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from hub.store.journal import find_event
from hub.store.models import RawEvent

from tests.helpers import fixture_bytes

FORM = {"name": "Ivan Petrov", "phone": "+7 916 123-45-67", "utm_source": "yandex",
        "utm_medium": "cpc", "utm_campaign": "brand", "gclid": "EAIaIQobChMI"}


def count_events(hub, **where) -> int:
    hub.db.file_intake()  # on SQLite, from the intake journal into raw_events
    with hub.db.read() as session:
        query = select(func.count()).select_from(RawEvent)
        for key, value in where.items():
            query = query.where(getattr(RawEvent, key) == value)
        return session.scalar(query)


def test_accepted_post_is_stored_before_the_answer(client, hub):
    response = client.post("/hooks/forms/landing", data=FORM)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "accepted"
    assert response.headers["X-Hub-Event-Id"] == body["event_id"]
    with hub.db.read() as session:
        raw = find_event(hub.db, session, body["event_id"])  # on SQLite, filed from the intake journal
    assert (raw.status, raw.channel, raw.provider, raw.endpoint) == ("pending", "form", "generic", "landing")
    assert b"utm_source=yandex" in raw.body


def test_tilda_connection_check_is_answered_and_not_stored(client, hub):
    response = client.post("/hooks/forms/tilda", data={"test": "test"})
    assert (response.status_code, response.data) == (200, b"ok")
    assert count_events(hub) == 0


def test_same_tilda_tranid_twice_is_stored_once(client, hub):
    form = {"Name": "Olga", "Phone": "+7 (916) 555-44-33", "tranid": "467251:8442970", "formid": "form712345678"}
    first = client.post("/hooks/forms/tilda", data=form)
    second = client.post("/hooks/forms/tilda", data=form)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.get_json() == {"event_id": first.get_json()["event_id"], "status": "duplicate"}
    assert second.headers["X-Hub-Event-Id"] == first.get_json()["event_id"]
    assert count_events(hub) == 1


def test_double_clicked_submit_is_stored_once(client, hub):
    first = client.post("/hooks/forms/landing", data=FORM)
    second = client.post("/hooks/forms/landing", data=FORM)
    changed = client.post("/hooks/forms/landing", data={**FORM, "message": "one more question"})
    assert (first.status_code, second.status_code, changed.status_code) == (202, 200, 202)
    assert second.get_json()["event_id"] == first.get_json()["event_id"]
    assert count_events(hub) == 2


def test_double_click_after_the_window_is_a_new_event(client, hub):
    from datetime import timedelta

    client.post("/hooks/forms/landing", data=FORM)
    later = hub.now() + timedelta(minutes=6)
    hub.clock = lambda: later
    assert client.post("/hooks/forms/landing", data=FORM).status_code == 202
    assert count_events(hub) == 2


def test_unsupported_content_type_is_415(client, hub):
    response = client.post("/hooks/forms/landing", data="<xml/>", content_type="application/xml")
    assert response.status_code == 415
    assert "content-type" in response.get_json()["fields"]
    assert count_events(hub) == 0


def test_body_over_the_limit_is_413(client, hub):
    limit = hub.config["limits"]["body_bytes"]
    response = client.post("/hooks/forms/landing", data={**FORM, "message": "x" * (limit + 1)})
    assert response.status_code == 413
    assert response.get_json()["fields"] == {"body": "too large"}
    assert count_events(hub) == 0


def test_missing_required_phone_is_422_naming_it(client, hub):
    response = client.post("/hooks/forms/landing", data={"name": "No Phone", "email": "a@example.com"})
    assert response.status_code == 422
    assert response.get_json()["fields"] == {"phone": "required"}
    assert count_events(hub) == 0


def test_a_phone_that_is_not_a_phone_is_422(client):
    response = client.post("/hooks/forms/landing", data={"name": "X", "phone": "call me maybe"})
    assert response.status_code == 422
    assert "phone" in response.get_json()["fields"]


def test_unknown_form_is_404(client):
    response = client.post("/hooks/forms/nope", data=FORM)
    assert response.status_code == 404
    assert response.get_json()["fields"] == {"form": "not configured"}


def test_unknown_provider_is_404(client):
    assert client.post("/hooks/telephony/nope", data=FORM).status_code == 404


@pytest.fixture
def secret_form(config_document, monkeypatch):
    monkeypatch.setenv("LANDING_SECRET", "s3cr3t-value")
    config_document["forms"]["landing"]["secret_env"] = "LANDING_SECRET"


def test_form_secret(secret_form, client, hub):
    missing = client.post("/hooks/forms/landing", data=FORM)
    wrong = client.post("/hooks/forms/landing", data=FORM, headers={"X-Hub-Secret": "guess"})
    header = client.post("/hooks/forms/landing", data=FORM, headers={"X-Hub-Secret": "s3cr3t-value"})
    field = client.post("/hooks/forms/landing", data={**FORM, "message": "b", "_secret": "s3cr3t-value"})
    assert (missing.status_code, wrong.status_code) == (401, 403)
    assert (header.status_code, field.status_code) == (202, 202)
    with hub.db.read() as session:
        stored_headers = [raw.headers for raw in session.scalars(select(RawEvent))]
    assert all("x-hub-secret" not in headers for headers in stored_headers)


def test_honeypot_gets_a_normal_answer_and_is_stored_ignored(client, hub):
    response = client.post("/hooks/forms/landing", data={**FORM, "website": "http://spam.example"})
    assert response.status_code == 202
    assert count_events(hub, status="ignored", error="honeypot") == 1


def test_browser_post_is_redirected_when_the_form_says_so(hub, client):
    hub.config["forms"]["landing"]["redirect"] = "https://site.example/thanks"
    browser = client.post("/hooks/forms/landing", data=FORM,
                          headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    script = client.post("/hooks/forms/landing", data={**FORM, "name": "B"}, headers={"Accept": "*/*"})
    assert browser.status_code == 303
    assert browser.headers["Location"] == "https://site.example/thanks"
    assert browser.headers["X-Hub-Event-Id"]
    assert script.status_code == 202


def test_cors_for_configured_origins_only(client):
    allowed = client.options("/hooks/forms/landing", headers={
        "Origin": "http://localhost:8080", "Access-Control-Request-Method": "POST"})
    other = client.post("/hooks/forms/landing", data=FORM, headers={"Origin": "https://evil.example"})
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:8080"
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Origin" not in other.headers


def test_rate_limit_is_429_with_retry_after(hub, client):
    hub.config["limits"]["requests_per_minute"] = 3
    frozen = hub.now()
    hub.clock = lambda: frozen  # one rate window for the whole test
    answers = [client.post("/hooks/forms/landing", data={**FORM, "phone": f"+7916000000{i}"}).status_code
               for i in range(5)]
    assert answers[:3] == [202, 202, 202]
    assert answers[3:] == [429, 429]
    limited = client.post("/hooks/forms/landing", data=FORM)
    assert int(limited.headers["Retry-After"]) > 0


def test_windows_1251_post_is_decoded(client, hub, run_jobs, api):
    body = fixture_bytes("webforms/generic/submission__legacy_site.windows-1251.urlencoded")
    response = client.post("/hooks/forms/landing", data=body,
                           content_type="application/x-www-form-urlencoded; charset=windows-1251")
    assert response.status_code == 202
    run_jobs()
    event = api.get(f"/api/events/{response.get_json()['event_id']}").get_json()
    lead = api.get(f"/api/leads/{event['lead_number']}").get_json()
    assert lead["name"].startswith("Иван")


@pytest.mark.parametrize("name", [
    "<script>alert('x')</script>", "Robert'); DROP TABLE leads;--", "Анна 👩‍💻🚀",
    "محمد عبد الله", "\u202eevil\u202c שלום"])
def test_hostile_names_are_stored_and_returned_unchanged(name, client, run_jobs, api):
    response = client.post("/hooks/forms/landing", json={"name": name, "phone": "+79161112233"})
    assert response.status_code == 202
    run_jobs()
    event = api.get(f"/api/events/{response.get_json()['event_id']}").get_json()
    raw = api.get(f"/api/leads/{event['lead_number']}")
    assert raw.content_type.startswith("application/json")
    assert json.loads(raw.data)["name"] == name


def test_database_down_is_503_and_nothing_is_claimed(client, hub):
    hub.db.engine.dispose()
    from sqlalchemy import create_engine

    from hub.store.db import Database
    hub.db = Database(create_engine("postgresql+psycopg://nobody:x@127.0.0.1:1/none",
                                    connect_args={"connect_timeout": 1}))
    response = client.post("/hooks/forms/landing", data=FORM)
    assert response.status_code == 503
    assert "retry" in response.get_json()["error"]
    assert response.headers["Retry-After"] == "30"


def test_the_stored_headers_are_the_requests_by_lower_case_name(app):
    from hub.web.receive import request_headers

    with app.test_request_context("/hooks/forms/landing", method="POST", data=b"a=1",
                                  headers={"X-Forwarded-For": "10.0.0.1", "User-Agent": "Test/1.0"},
                                  content_type="application/x-www-form-urlencoded") as context:
        expected = {name.lower(): value for name, value in context.request.headers.items()}
        assert request_headers(context.request.environ) == expected
        assert expected["x-forwarded-for"] == "10.0.0.1" and expected["content-length"] == "3"
