"""Bitrix24 events back to the hub: the outgoing-webhook delivery (checked against its
application token), reading the lead back with ``crm.lead.get``, polling with
``crm.lead.list``, stages by their semantics, and binding the handlers.

Deliveries are ``tests/fixtures/crm/bitrix24/event__<event>.txt`` (the documented
form-encoded body); answers are the documented ``crm.lead.get`` / ``crm.lead.list`` /
``event.bind`` ones.
"""
import json
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlencode

import pytest
import responses

from connectors.base import BadRequest, CrmEvent, CrmLead, Forbidden, Inbound, PermanentFailure
from connectors.crm import bitrix24

from tests.helpers import FIXTURES

FOLDER = FIXTURES / "crm" / "bitrix24"
API = "https://acme.bitrix24.ru/rest/7/k3y5ecr3tc0de9x1"
TOKEN = "r7x2k9m4q1w8e5t3y6u0i2o4p7a9s1d3"
SETTINGS = {"webhook_url": API + "/", "application_token": TOKEN, "team": {"anna": 17, "boris": 18}}
MSK = timezone(timedelta(hours=3))


def delivery(name: str, **changes) -> Inbound:
    fields = dict(parse_qsl((FOLDER / name).read_text(encoding="utf-8")))
    fields.update(changes)
    return Inbound("POST", "https://hub.example.com/hooks/crm/bitrix24",
                   headers={"content-type": "application/x-www-form-urlencoded"},
                   body=urlencode(fields).encode())


def answer(name: str):
    return json.loads((FOLDER / name).read_text(encoding="utf-8"))


def test_the_documented_token_passes():
    assert bitrix24.verify(delivery("event__lead_update.txt"), SETTINGS) is None
    member = {**SETTINGS, "member_id": "4f1e9d2c7a8b3e5f6a0c1d2e3f4a5b6c"}
    assert bitrix24.verify(delivery("event__lead_update.txt"), member) is None


@pytest.mark.parametrize("changes,settings,field", [
    ({"auth[application_token]": "x" * 32}, SETTINGS, "auth[application_token]"),
    ({"auth[application_token]": ""}, SETTINGS, "auth[application_token]"),
    ({}, {**SETTINGS, "application_token": None}, "auth[application_token]"),
    ({}, {**SETTINGS, "member_id": "another-portal"}, "auth[member_id]"),
])
def test_a_wrong_or_missing_token_is_forbidden(changes, settings, field):
    with pytest.raises(Forbidden) as refused:
        bitrix24.verify(delivery("event__lead_update.txt", **changes), settings)
    assert refused.value.status == 403 and field in refused.value.fields


def test_an_update_names_the_lead_and_one_delivery():
    [parsed] = bitrix24.parse(delivery("event__lead_update.txt"), SETTINGS)
    assert parsed.event_type == "lead.update" and parsed.ignore is None
    assert parsed.extra["crm"] == CrmEvent("update", "1001")
    assert parsed.delivery_key == "ONCRMLEADUPDATE:1001:1796022902:43"


def test_a_delete_and_an_add():
    [deleted] = bitrix24.parse(delivery("event__lead_delete.txt"), SETTINGS)
    assert deleted.extra["crm"] == CrmEvent("delete", "1001")
    [added] = bitrix24.parse(delivery("event__lead_add.txt"), SETTINGS)
    assert added.ignore.startswith("a lead added in the CRM") and "crm" not in added.extra


def test_other_events_are_acknowledged_and_bad_ones_refused():
    [deal] = bitrix24.parse(delivery("event__lead_update.txt", event="ONCRMDEALUPDATE"), SETTINGS)
    assert deal.ignore == "not a lead change: ONCRMDEALUPDATE"
    with pytest.raises(BadRequest) as bad:
        bitrix24.parse(delivery("event__lead_update.txt", **{"data[FIELDS][ID]": ""}), SETTINGS)
    assert bad.value.fields == {"data[FIELDS][ID]": "required"}
    with pytest.raises(BadRequest) as bad:
        bitrix24.parse(delivery("event__lead_update.txt", event=""), SETTINGS)
    assert bad.value.fields == {"event": "required"}


def test_read_back_asks_crm_lead_get_through_the_throttle(api, throttle):
    api.add(responses.POST, f"{API}/crm.lead.get", json=answer("lead_get__in_process.json"))
    lead = bitrix24.read_back(CrmEvent("update", "1001"), SETTINGS, throttle)
    assert json.loads(api.calls[0].request.body) == {"id": "1001"} and throttle.seen == [0]
    assert lead == CrmLead("1001", status="IN_PROCESS", semantic="process", user="17",
                           modified_at=datetime(2026, 11, 30, 10, 15, 1, tzinfo=MSK), modified_by="17")


def test_a_lead_the_portal_no_longer_has_reads_back_as_deleted(api, throttle):
    api.add(responses.POST, f"{API}/crm.lead.get", json=answer("lead_get__not_found.json"), status=400)
    assert bitrix24.read_back(CrmEvent("update", "1001"), SETTINGS, throttle) == CrmLead("1001", deleted=True)
    assert bitrix24.read_back(CrmEvent("delete", "1001"), SETTINGS, throttle) == CrmLead("1001", deleted=True)
    assert len(api.calls) == 1  # a delete needs no read-back


def test_polling_pages_through_the_changes_oldest_first(api, throttle):
    api.add(responses.POST, f"{API}/crm.lead.list", json=answer("lead_list__changed.json"))
    api.add(responses.POST, f"{API}/crm.lead.list", json=answer("lead_list__empty.json"))
    since = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    pages = list(bitrix24.changed_since(SETTINGS, since, throttle))
    assert [[lead.external_id for lead in page] for page in pages] == [["1001", "1003"], []]
    first, second = (json.loads(call.request.body) for call in api.calls)
    assert first == {"filter": {">DATE_MODIFY": "2026-11-30T07:00:00+00:00"}, "select": bitrix24.SELECT,
                     "order": {"DATE_MODIFY": "ASC"}, "start": 0}
    assert second["start"] == 50 and throttle.seen == [0, 1]
    assert pages[0][0] == CrmLead("1001", status="JUNK", semantic="failure", user="17",
                                  modified_at=datetime(2026, 11, 30, 10, 20, tzinfo=MSK), modified_by="17")


@pytest.mark.parametrize("lead,settings,expected", [
    (CrmLead("1", status="NEW", semantic="process"), {}, "new"),
    (CrmLead("1", status="IN_PROCESS", semantic="process"), {}, "in_progress"),
    (CrmLead("1", status="CONVERTED", semantic="success"), {}, "converted"),
    (CrmLead("1", status="UC_WON_BIG", semantic="success"), {}, "converted"),  # a portal's own success stage
    (CrmLead("1", status="UC_NO_BUDGET", semantic="failure"), {}, "junk"),     # one of several failures
    (CrmLead("1", status="PROCESSED", semantic="process"), {}, None),          # never guessed
    (CrmLead("1", status="PROCESSED", semantic="process"),
     {"status_ids": {"in_progress": ["IN_PROCESS", "PROCESSED"]}}, "in_progress"),
])
def test_stages_come_back_by_their_semantics_then_the_reverse_mapping(lead, settings, expected):
    assert bitrix24.hub_status(lead, settings) == expected


def test_what_a_push_sends_is_known_for_echoes(api, throttle):
    lead = {"number": 1, "status": "in_progress", "assignee": {"id": "boris"}, "touches": []}
    settings = {**SETTINGS, "status_ids": {"in_progress": ["PROCESSED", "IN_PROCESS"]}}
    hub = {"status": "in_progress", "assignee": "boris", "stage": None}
    assert bitrix24.sent_state(lead, settings, created=True) == {"status": None, "user": "18", "hub": hub}
    assert bitrix24.sent_state(lead, settings, created=False) == {"status": "PROCESSED", "user": "18", "hub": hub}
    moved = {**settings, "last_pushed": {"status": "new", "assignee": "boris"}}  # only the status moved
    assert bitrix24.sent_state(lead, moved, created=False) == {"status": "PROCESSED", "user": None, "hub": hub}
    api.add(responses.POST, f"{API}/crm.lead.update", json={"result": True})
    bitrix24.push(lead, settings, "1001", 2, throttle)
    bitrix24.push(lead, moved, "1001", 2, throttle)
    assert json.loads(api.calls[0].request.body)["fields"] == {"STATUS_ID": "PROCESSED", "ASSIGNED_BY_ID": 18}
    assert json.loads(api.calls[1].request.body)["fields"] == {"STATUS_ID": "PROCESSED"}
    bitrix24.push(lead, {**settings, "last_pushed": hub}, "1001", 2, throttle)  # nothing moved: no update
    assert len(api.calls) == 2


def test_connect_binds_the_lead_events(api, throttle):
    api.add(responses.POST, f"{API}/event.bind", json=answer("event_bind__ok.json"))
    api.add(responses.POST, f"{API}/event.bind", json=answer("event_bind__ok.json"))
    lines = bitrix24.connect(SETTINGS, "https://hub.example.com/hooks/crm/bitrix24", throttle)
    assert [json.loads(call.request.body) for call in api.calls] == [
        {"event": "ONCRMLEADUPDATE", "handler": "https://hub.example.com/hooks/crm/bitrix24"},
        {"event": "ONCRMLEADDELETE", "handler": "https://hub.example.com/hooks/crm/bitrix24"}]
    assert lines[0] == "bound ONCRMLEADUPDATE to https://hub.example.com/hooks/crm/bitrix24"


def test_connect_through_an_incoming_webhook_says_what_to_paste(api, throttle):
    api.add(responses.POST, f"{API}/event.bind", json=answer("error__wrong_auth_type.json"), status=403)
    lines = bitrix24.connect(SETTINGS, "https://hub.example.com/hooks/crm/bitrix24", throttle)
    assert "  handler URL: https://hub.example.com/hooks/crm/bitrix24" in lines
    assert "  events: ONCRMLEADUPDATE, ONCRMLEADDELETE (lead updated, lead deleted)" in lines


def test_connect_reports_any_other_refusal(api, throttle):
    api.add(responses.POST, f"{API}/event.bind", json={"error": "INVALID_CREDENTIALS",
                                                       "error_description": "Invalid request credentials"}, status=401)
    with pytest.raises(PermanentFailure) as failed:
        bitrix24.connect(SETTINGS, "https://hub.example.com/hooks/crm/bitrix24", throttle)
    assert "INVALID_CREDENTIALS" in failed.value.message and "k3y5ecr3tc0de9x1" not in failed.value.message
