"""The amoCRM CRM target against ``responses`` fakes of API v4 (its documented answers).

Answers are recorded as ``tests/fixtures/crm/amocrm/<resource>__<variant>.json`` and
``error__<kind>.json``; ``GET /api/v4/leads`` answers 204 with no body when nothing matches.
"""
import json
import logging

import pytest
import requests
import responses
from responses import matchers

from connectors.base import PermanentFailure, TemporaryFailure
from connectors.crm import amocrm

from tests.helpers import FIXTURES

FOLDER = FIXTURES / "crm" / "amocrm"
BASE = "https://example.amocrm.ru"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.test"
SETTINGS = {"base_url": BASE, "token": TOKEN, "team": {"anna": 17}}
SOURCE = {"utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "brand", "utm_term": "crm",
          "utm_content": None, "gclid": None, "yclid": "123", "referrer": "https://yandex.ru/",
          "landing_page": "https://site.example/", "form": "landing", "mailbox": None,
          "called_number": None}
LEAD = {
    "number": 123, "status": "new", "name": "Ivan Ivanov", "phone": "+79161234567",
    "email": "ivan@example.com", "message": "Need a quote for 5 seats", "channel": "form",
    "source": SOURCE, "touches": [], "assignee": {"id": "anna", "name": "Anna Petrova"},
}
COMPLEX = f"{BASE}/api/v4/leads/complex"
NOTES = f"{BASE}/api/v4/leads/1234567/notes"
SEARCH = matchers.query_param_matcher({"query": "lead-hub-123"})


def answer(name: str):
    return json.loads((FOLDER / name).read_text(encoding="utf-8"))


def requests_made(api) -> list[str]:
    return [f"{call.request.method} {call.request.path_url}" for call in api.calls]


def test_module_declares_the_protocol():
    assert (amocrm.NAME, amocrm.SECRETS) == ("amocrm", ("token_env", "hook_secret_env"))
    assert (amocrm.OPTIONAL_SECRETS, amocrm.INBOUND) == (("hook_secret_env",), ("hook_secret_env", "account_id"))
    assert amocrm.load_mapping()["lead_fields"]["gclid"] == "GCLID"


def test_create_posts_one_complex_lead_then_the_message_as_a_note(api, throttle):
    api.add(responses.POST, COMPLEX, json=answer("leads_complex__created.json"))
    api.add(responses.POST, NOTES, json=answer("leads_notes__created.json"))

    assert amocrm.push(LEAD, SETTINGS, None, 1, throttle) == "1234567"

    assert requests_made(api) == ["POST /api/v4/leads/complex", "POST /api/v4/leads/1234567/notes"]
    assert throttle.seen == [0, 1]
    assert api.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(api.calls[0].request.body) == [{
        "name": "Lead №123: Ivan Ivanov [lead-hub-123]",
        "request_id": "lead-hub-123",
        "custom_fields_values": [
            {"field_code": "UTM_SOURCE", "values": [{"value": "yandex"}]},
            {"field_code": "UTM_MEDIUM", "values": [{"value": "cpc"}]},
            {"field_code": "UTM_CAMPAIGN", "values": [{"value": "brand"}]},
            {"field_code": "UTM_TERM", "values": [{"value": "crm"}]},
            {"field_code": "YCLID", "values": [{"value": "123"}]},
        ],
        "responsible_user_id": 17,
        "_embedded": {
            "tags": [{"name": "form"}],
            "contacts": [{"name": "Ivan Ivanov", "custom_fields_values": [
                {"field_code": "PHONE", "values": [{"value": "+79161234567", "enum_code": "WORK"}]},
                {"field_code": "EMAIL", "values": [{"value": "ivan@example.com", "enum_code": "WORK"}]},
            ]}],
        },
    }]
    assert json.loads(api.calls[1].request.body) == [
        {"note_type": "common", "params": {"text": "Need a quote for 5 seats"}}]


def test_a_lead_with_only_a_phone_and_no_message_is_one_request(api):
    api.add(responses.POST, COMPLEX, json=answer("leads_complex__created.json"))
    lead = {"number": 8, "phone": "+74951112233", "channel": "call", "source": {"gclid": "g-1"}}

    assert amocrm.push(lead, SETTINGS, None, 1, lambda: None) == "1234567"

    assert json.loads(api.calls[0].request.body) == [{
        "name": "Lead №8: +74951112233 [lead-hub-8]",
        "request_id": "lead-hub-8",
        "custom_fields_values": [{"field_code": "GCLID", "values": [{"value": "g-1"}]}],
        "_embedded": {"tags": [{"name": "call"}], "contacts": [{"name": "+74951112233", "custom_fields_values": [
            {"field_code": "PHONE", "values": [{"value": "+74951112233", "enum_code": "WORK"}]}]}]},
    }]


def test_expired_token_is_permanent_with_a_clear_message(api):
    api.add(responses.POST, COMPLEX, json=answer("error__unauthorized.json"), status=401,
            content_type="application/problem+json")
    with pytest.raises(PermanentFailure) as caught:
        amocrm.push(LEAD, SETTINGS, None, 1, lambda: None)
    assert caught.value.message == "amoCRM token rejected (expired?): Unauthorized"
    assert TOKEN not in caught.value.message


def test_validation_errors_are_permanent_and_name_the_path(api):
    api.add(responses.POST, COMPLEX, json=answer("error__validation.json"), status=400,
            content_type="application/problem+json")
    with pytest.raises(PermanentFailure) as caught:
        amocrm.push(LEAD, SETTINGS, None, 1, lambda: None)
    assert caught.value.message == ("amoCRM HTTP 400: Bad Request; Request validation failed; "
                                    "_embedded.contacts.0.name: This field is missing. (FieldMissing)")


@pytest.mark.parametrize("fake,message,retry_after", [
    ({"status": 429, "json": {"title": "Too Many Requests", "status": 429}, "headers": {"Retry-After": "2"}},
     "amoCRM HTTP 429: Too Many Requests", 2.0),
    ({"status": 502, "body": "<html>Bad Gateway</html>"}, "amoCRM HTTP 502: Bad Gateway", None),
    ({"status": 403, "json": {"title": "Forbidden", "detail": "Account is blocked"}},
     "amoCRM HTTP 403: Forbidden; Account is blocked", None),
])
def test_http_errors_are_classified(api, fake, message, retry_after):
    api.add(responses.POST, COMPLEX, **fake)
    expected = PermanentFailure if fake["status"] == 403 else TemporaryFailure
    with pytest.raises(expected) as caught:
        amocrm.push(LEAD, SETTINGS, None, 1, lambda: None)
    assert (caught.value.message, caught.value.retry_after) == (message, retry_after)


def test_a_timeout_is_temporary(api):
    api.add(responses.POST, COMPLEX, body=requests.exceptions.ConnectTimeout("connect timed out"))
    with pytest.raises(TemporaryFailure) as caught:
        amocrm.push(LEAD, SETTINGS, None, 1, lambda: None)
    assert caught.value.message == "amoCRM POST /api/v4/leads/complex: connect timed out"


def test_a_retry_finds_the_lead_by_its_exact_name_marker(api, throttle):
    api.add(responses.GET, f"{BASE}/api/v4/leads", match=[SEARCH], json=answer("leads_list__marker_found.json"))

    assert amocrm.push(LEAD, SETTINGS, None, 2, throttle) == "1234567"  # not 1239999 (lead-hub-1234)

    assert requests_made(api) == ["GET /api/v4/leads?query=lead-hub-123"]  # no second create
    assert throttle.seen == [0]


def test_a_retry_creates_when_the_search_finds_nothing(api):
    api.add(responses.GET, f"{BASE}/api/v4/leads", match=[SEARCH], status=204)
    api.add(responses.POST, COMPLEX, json=answer("leads_complex__created.json"))
    api.add(responses.POST, NOTES, json=answer("leads_notes__created.json"))

    assert amocrm.push(LEAD, SETTINGS, None, 2, lambda: None) == "1234567"

    assert requests_made(api) == ["GET /api/v4/leads?query=lead-hub-123", "POST /api/v4/leads/complex",
                                  "POST /api/v4/leads/1234567/notes"]


def test_a_retry_ignores_a_lead_whose_marker_only_starts_the_same(api):
    lead = {**LEAD, "number": 12, "message": None}
    api.add(responses.GET, f"{BASE}/api/v4/leads", match=[matchers.query_param_matcher({"query": "lead-hub-12"})],
            json=answer("leads_list__marker_found.json"))
    api.add(responses.POST, COMPLEX, json=answer("leads_complex__created.json"))

    assert amocrm.push(lead, SETTINGS, None, 2, lambda: None) == "1234567"

    assert json.loads(api.calls[1].request.body)[0]["name"] == "Lead №12: Ivan Ivanov [lead-hub-12]"


def test_a_failed_note_does_not_fail_the_created_lead(api, caplog):
    api.add(responses.POST, COMPLEX, json=answer("leads_complex__created.json"))
    api.add(responses.POST, NOTES, status=500, body="")
    with caplog.at_level(logging.WARNING, logger="hub.crm"):
        assert amocrm.push(LEAD, SETTINGS, None, 1, lambda: None) == "1234567"
    assert caplog.messages == ["amoCRM lead 1234567 created, its message note failed: "
                               "amoCRM HTTP 500: Internal Server Error"]


def test_an_answer_without_a_lead_id_is_temporary(api):
    api.add(responses.POST, COMPLEX, json={"_embedded": {}})
    with pytest.raises(TemporaryFailure) as caught:
        amocrm.push(LEAD, SETTINGS, None, 1, lambda: None)
    assert caught.value.message == "amoCRM /api/v4/leads/complex: no lead id in the answer"


@pytest.mark.parametrize("status,settings,expected", [
    ("converted", SETTINGS, {"status_id": 142, "responsible_user_id": 17}),
    ("junk", {**SETTINGS, "team": {}}, {"status_id": 143}),
    ("in_progress", {**SETTINGS, "status_ids": {"in_progress": 5550001}},
     {"status_id": 5550001, "responsible_user_id": 17}),
])
def test_update_patches_mapped_status_and_responsible_user(api, status, settings, expected, throttle):
    api.add(responses.PATCH, f"{BASE}/api/v4/leads/1234567", json=answer("lead_patch__updated.json"))

    assert amocrm.push({**LEAD, "status": status}, settings, "1234567", 1, throttle) == "1234567"

    assert json.loads(api.calls[0].request.body) == expected
    assert throttle.seen == [0]


def test_update_with_nothing_mapped_makes_no_request(api):
    lead = {**LEAD, "status": "in_progress", "assignee": None}
    assert amocrm.push(lead, SETTINGS, "1234567", 1, lambda: None) == "1234567"
    assert len(api.calls) == 0


@pytest.mark.parametrize("lead,contact", [
    ({"name": "Olga"}, {"name": "Olga"}),
    ({"email": "olga@example.com"}, {"name": "olga@example.com", "custom_fields_values": [
        {"field_code": "EMAIL", "values": [{"value": "olga@example.com", "enum_code": "WORK"}]}]}),
    ({"message": "no contact data at all"}, None),
])
def test_the_contact_carries_only_what_the_lead_has(lead, contact):
    assert amocrm.lead_contact(lead) == contact


def test_an_account_without_a_tracking_field_can_unmap_it():
    settings = {**SETTINGS, "lead_fields": {"yclid": None, "utm_medium": None}}
    codes = [field["field_code"] for field in amocrm.complex_lead(LEAD, settings)["custom_fields_values"]]
    assert codes == ["UTM_SOURCE", "UTM_CAMPAIGN", "UTM_TERM"]
