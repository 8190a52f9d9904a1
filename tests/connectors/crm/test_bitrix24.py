"""The Bitrix24 CRM target against ``responses`` fakes of the incoming-webhook REST API.

Answers are the documented ones (the b24restdocs pages for
crm.lead.list / crm.timeline.comment.*), recorded as
``tests/fixtures/crm/bitrix24/<method>__<variant>.json`` and ``error__<code>.json``.
"""
import json
import traceback

import pytest
import requests
import responses

from connectors.base import PermanentFailure, TemporaryFailure
from connectors.crm import bitrix24

from tests.helpers import FIXTURES

FOLDER = FIXTURES / "crm" / "bitrix24"
CODE = "k3y5ecr3tc0de9x1"
WEBHOOK_URL = f"https://acme.bitrix24.ru/rest/7/{CODE}/"
API = f"https://acme.bitrix24.ru/rest/7/{CODE}"
SETTINGS = {"webhook_url": WEBHOOK_URL, "team": {"anna": 17}}
SOURCE = {"utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "brand", "utm_term": "crm",
          "utm_content": None, "gclid": None, "yclid": "123", "referrer": "https://yandex.ru/",
          "landing_page": "https://site.example/?utm_source=yandex", "form": "landing",
          "mailbox": None, "called_number": None}
LEAD = {
    "number": 123, "status": "new", "name": "Ivan Ivanov", "phone": "+79161234567",
    "email": "ivan@example.com", "message": "Need a quote <b>today</b> & tomorrow",
    "channel": "form", "source": SOURCE, "last_source": SOURCE,
    "touches": [{"at": "2026-11-23T10:00:00+03:00", "channel": "form", "event_id": "ev-1",
                 "source": SOURCE}],
    "assignee": {"id": "anna", "name": "Anna Petrova"},
}


def answer(name: str):
    return json.loads((FOLDER / name).read_text(encoding="utf-8"))


def sent(call) -> dict:
    return json.loads(call.request.body)


def methods(api) -> list[str]:
    return [call.request.url.rpartition("/")[2] for call in api.calls]


def test_module_declares_the_protocol():
    assert (bitrix24.NAME, bitrix24.SECRETS) == ("bitrix24", ("webhook_url_env", "application_token_env"))
    assert bitrix24.OPTIONAL_SECRETS == bitrix24.INBOUND == ("application_token_env",)
    mapping = bitrix24.load_mapping()
    assert mapping["source_ids"] == {"form": "WEB", "call": "CALL", "mail": "EMAIL", "sms": "OTHER"}
    assert mapping["source_fields"]["utm_term"] == "UTM_TERM"


def test_create_sends_the_documented_fields_and_returns_the_id(api, throttle):
    api.add(responses.POST, f"{API}/crm.lead.add", json=answer("lead_add__ok.json"))

    assert bitrix24.push(LEAD, SETTINGS, None, 1, throttle) == "42"

    assert methods(api) == ["crm.lead.add"] and throttle.seen == [0]
    assert sent(api.calls[0]) == {
        "fields": {
            "TITLE": "Lead №123: Ivan Ivanov",
            "NAME": "Ivan Ivanov",
            "PHONE": [{"VALUE": "+79161234567", "VALUE_TYPE": "WORK"}],
            "EMAIL": [{"VALUE": "ivan@example.com", "VALUE_TYPE": "WORK"}],
            "SOURCE_ID": "WEB",
            "SOURCE_DESCRIPTION": "form: landing\nreferrer: https://yandex.ru/",
            "COMMENTS": "Need a quote &lt;b&gt;today&lt;/b&gt; &amp; tomorrow",
            "ASSIGNED_BY_ID": 17,
            "ORIGINATOR_ID": "lead-hub",
            "ORIGIN_ID": "123",
            "UTM_SOURCE": "yandex", "UTM_MEDIUM": "cpc", "UTM_CAMPAIGN": "brand", "UTM_TERM": "crm",
        },
        "params": {"REGISTER_SONET_EVENT": "Y"},
    }


def test_a_bare_call_lead_leaves_out_empty_fields():
    lead = {"number": 7, "phone": "+74951112233", "channel": "call",
            "source": {"called_number": "+74957654321"}, "assignee": {"id": "boris"}}
    assert bitrix24.lead_fields(lead, SETTINGS) == {
        "TITLE": "Lead №7: +74951112233",
        "PHONE": [{"VALUE": "+74951112233", "VALUE_TYPE": "WORK"}],
        "SOURCE_ID": "CALL",
        "SOURCE_DESCRIPTION": "called_number: +74957654321",
        "ORIGINATOR_ID": "lead-hub",
        "ORIGIN_ID": "7",
    }


@pytest.mark.parametrize("channel,overrides,expected", [
    ("form", {}, "WEB"), ("call", {}, "CALL"), ("mail", {}, "EMAIL"), ("sms", {}, "OTHER"),
    ("chat", {}, "OTHER"), ("form", {"form": "WEBFORM"}, "WEBFORM"), ("call", {"form": "WEBFORM"}, "CALL"),
])
def test_source_id_by_channel_overridable_in_settings(channel, overrides, expected):
    assert bitrix24.source_id(channel, {"source_ids": overrides}) == expected


def test_settings_map_more_source_keys_to_portal_fields():
    settings = {**SETTINGS, "source_fields": {"yclid": "UF_CRM_YCLID", "utm_term": None}}
    fields = bitrix24.lead_fields(LEAD, settings)
    assert (fields["UF_CRM_YCLID"], fields["UTM_SOURCE"]) == ("123", "yandex")
    assert "UTM_TERM" not in fields and None not in fields


@pytest.mark.parametrize("status,fixture,failure,text,retry_after", [
    (503, "error__query_limit_exceeded.json", TemporaryFailure,
     "HTTP 503 QUERY_LIMIT_EXCEEDED: Too many requests", None),
    (429, "error__operation_time_limit.json", TemporaryFailure,
     "HTTP 429 OPERATION_TIME_LIMIT: Method is blocked due to operation time limit", None),
    (500, "error__internal_server_error.json", TemporaryFailure,
     "HTTP 500 INTERNAL_SERVER_ERROR: Internal server error", None),
    (401, "error__expired_token.json", PermanentFailure,
     "HTTP 401 expired_token: The access token provided has expired", None),
    (401, "error__invalid_credentials.json", PermanentFailure,
     "HTTP 401 INVALID_CREDENTIALS: Invalid request credentials", None),
    (401, "error__no_auth_found.json", PermanentFailure,
     "HTTP 401 NO_AUTH_FOUND: Wrong authorization data", None),
    (401, "error__insufficient_scope.json", PermanentFailure,
     "HTTP 401 insufficient_scope: The request requires higher privileges than provided by the "
     "webhook token", None),
    (404, "error__method_not_found.json", PermanentFailure,
     "HTTP 404 ERROR_METHOD_NOT_FOUND: Method not found!", None),
    (400, "error__access_denied.json", PermanentFailure, "HTTP 400: Access denied.", None),
    (403, "error__portal_deleted.json", PermanentFailure, "HTTP 403 PORTAL_DELETED: Portal was deleted", None),
])
def test_documented_errors_are_classified_with_bitrix24s_message(api, status, fixture, failure, text,
                                                                 retry_after):
    api.add(responses.POST, f"{API}/crm.lead.add", json=answer(fixture), status=status)
    with pytest.raises(failure) as caught:
        bitrix24.push(LEAD, SETTINGS, None, 1, lambda: None)
    assert type(caught.value) is failure
    assert caught.value.message == f"Bitrix24 crm.lead.add: {text}"
    assert caught.value.retry_after == retry_after


def test_429_retry_after_header_becomes_retry_after(api):
    api.add(responses.POST, f"{API}/crm.lead.add", json=answer("error__operation_time_limit.json"),
            status=429, headers={"Retry-After": "30"})
    with pytest.raises(TemporaryFailure) as caught:
        bitrix24.push(LEAD, SETTINGS, None, 1, lambda: None)
    assert caught.value.retry_after == 30.0


def test_a_non_json_answer_is_temporary(api):
    api.add(responses.POST, f"{API}/crm.lead.add", body="<html>maintenance</html>", status=502)
    api.add(responses.POST, f"{API}/crm.lead.add", body="<html>login</html>", status=200)
    for expected in ("HTTP 502: Bad Gateway", "HTTP 200: OK"):
        with pytest.raises(TemporaryFailure) as caught:
            bitrix24.push(LEAD, SETTINGS, None, 1, lambda: None)
        assert caught.value.message == f"Bitrix24 crm.lead.add: {expected}"


def test_a_timeout_is_temporary(api):
    api.add(responses.POST, f"{API}/crm.lead.add", body=requests.exceptions.ReadTimeout(
        "HTTPSConnectionPool(host='acme.bitrix24.ru', port=443): Read timed out. (read timeout=10)"))
    with pytest.raises(TemporaryFailure) as caught:
        bitrix24.push(LEAD, SETTINGS, None, 1, lambda: None)
    assert caught.value.message == ("Bitrix24 crm.lead.add: HTTPSConnectionPool(host='acme.bitrix24.ru', "
                                    "port=443): Read timed out. (read timeout=10)")


def test_a_retry_after_a_timeout_finds_the_lead_bitrix24_did_create(api, throttle):
    api.add(responses.POST, f"{API}/crm.lead.add", body=requests.exceptions.ReadTimeout("timed out"))
    api.add(responses.POST, f"{API}/crm.lead.list", json=answer("lead_list__found.json"))
    with pytest.raises(TemporaryFailure):
        bitrix24.push(LEAD, SETTINGS, None, 1, lambda: None)

    assert bitrix24.push(LEAD, SETTINGS, None, 2, throttle) == "42"

    assert methods(api) == ["crm.lead.add", "crm.lead.list"]  # no second crm.lead.add
    assert throttle.seen == [1]
    assert sent(api.calls[1]) == {"filter": {"ORIGINATOR_ID": "lead-hub", "ORIGIN_ID": "123"},
                                  "select": ["ID"], "order": {"ID": "ASC"}}


def test_a_retry_creates_when_the_first_try_left_nothing(api, throttle):
    api.add(responses.POST, f"{API}/crm.lead.list", json=answer("lead_list__empty.json"))
    api.add(responses.POST, f"{API}/crm.lead.add", json=answer("lead_add__ok.json"))

    assert bitrix24.push(LEAD, SETTINGS, None, 3, throttle) == "42"

    assert methods(api) == ["crm.lead.list", "crm.lead.add"]
    assert throttle.seen == [0, 1]
    assert sent(api.calls[1])["fields"]["ORIGIN_ID"] == "123"


def test_update_sets_status_and_comments_each_later_touch_once(api, throttle):
    touches = LEAD["touches"] + [
        {"at": "2026-11-23T11:00:00+03:00", "channel": "call", "event_id": "ev-2", "source": {}},
        {"at": "2026-11-24T09:30:00+03:00", "channel": "sms", "event_id": "ev-3",
         "source": {"utm_source": "google", "gclid": None}},
    ]
    lead = {**LEAD, "status": "in_progress", "touches": touches}
    api.add(responses.POST, f"{API}/crm.lead.update", json=answer("lead_update__ok.json"))
    api.add(responses.POST, f"{API}/crm.timeline.comment.list",
            json=answer("timeline_comment_list__one_touch_commented.json"))
    api.add(responses.POST, f"{API}/crm.timeline.comment.add", json=answer("timeline_comment_add__ok.json"))

    assert bitrix24.push(lead, SETTINGS, "42", 1, throttle) == "42"

    assert methods(api) == ["crm.lead.update", "crm.timeline.comment.list", "crm.timeline.comment.add"]
    assert throttle.seen == [0, 1, 2]
    assert sent(api.calls[0]) == {"id": "42", "fields": {"STATUS_ID": "IN_PROCESS", "ASSIGNED_BY_ID": 17},
                                  "params": {"REGISTER_SONET_EVENT": "Y"}}
    assert sent(api.calls[1]) == {"filter": {"ENTITY_ID": 42, "ENTITY_TYPE": "lead"},
                                  "select": ["ID", "COMMENT"], "order": {"ID": "DESC"}}
    assert sent(api.calls[2]) == {"fields": {
        "ENTITY_ID": 42, "ENTITY_TYPE": "lead",
        "COMMENT": "Repeat request via sms at 2026-11-24T09:30:00+03:00\nutm_source: google\n"
                   "[lead-hub touch ev-3]"}}


def test_update_with_nothing_mapped_and_one_touch_makes_no_request(api, throttle):
    lead = {**LEAD, "status": "archived", "assignee": {"id": "boris", "name": "Boris"}}
    assert bitrix24.push(lead, SETTINGS, "42", 1, throttle) == "42"
    assert (len(api.calls), throttle.seen) == (0, [])


def test_base_url_points_the_webhook_path_at_another_server(api):
    api.add(responses.POST, f"http://127.0.0.1:9000/rest/7/{CODE}/crm.lead.add",
            json=answer("lead_add__ok.json"))
    settings = {**SETTINGS, "base_url": "http://127.0.0.1:9000/"}
    assert bitrix24.push(LEAD, settings, None, 1, lambda: None) == "42"
    assert len(api.calls) == 1


@pytest.mark.parametrize("fake", [
    {"body": requests.exceptions.ConnectionError(
        f"HTTPSConnectionPool(host='acme.bitrix24.ru', port=443): Max retries exceeded with url: "
        f"/rest/7/{CODE}/crm.lead.add (Caused by NameResolutionError)")},
    {"body": requests.exceptions.InvalidURL(f"Invalid URL '{API}/crm.lead.add'")},
    {"json": answer("error__invalid_credentials.json"), "status": 401},
    {"json": {"error": "", "error_description": f"Unknown webhook {CODE}"}, "status": 400},
    {"body": f"<a href='{WEBHOOK_URL}'>moved</a>", "status": 500},
])
def test_the_webhook_code_never_appears_in_an_error(api, fake):
    api.add(responses.POST, f"{API}/crm.lead.add", **fake)
    with pytest.raises((TemporaryFailure, PermanentFailure)) as caught:
        bitrix24.push(LEAD, SETTINGS, None, 1, lambda: None)
    logged = "".join(traceback.format_exception(caught.value))
    assert caught.value.message.startswith("Bitrix24 crm.lead.add: ")
    assert CODE not in str(caught.value) and CODE not in logged
    assert caught.value.__cause__ is None and caught.value.__context__ is None
