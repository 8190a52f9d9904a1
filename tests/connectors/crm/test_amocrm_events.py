"""amoCRM account webhooks back to the hub: the URL's secret and the account id, the
``leads[<action>][n][...]`` items, reading back only what a webhook leaves out, polling
``/api/v4/leads`` by ``updated_at``, and the system stages 142 / 143.

Deliveries are ``tests/fixtures/crm/amocrm/webhook__<variant>.txt`` (form-encoded, as the
captured bodies are); answers are API v4's.
"""
import json
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

import pytest
import responses
from responses import matchers

from connectors.base import BadRequest, CrmEvent, CrmLead, Forbidden, Inbound, PermanentFailure
from connectors.crm import amocrm

from tests.helpers import FIXTURES

FOLDER = FIXTURES / "crm" / "amocrm"
BASE = "https://example.amocrm.ru"
SECRET = "Zq8x1NfA0u4T7cYw3m2LrV5sKd9pHe6B"
SETTINGS = {"base_url": BASE, "token": "tok", "hook_secret": SECRET, "account_id": 31234567,
            "team": {"anna": 7010001, "boris": 7010002}}
URL = "https://hub.example.com/hooks/crm/amocrm"


def delivery(name: str, secret: str | None = SECRET, **changes) -> Inbound:
    fields = dict(parse_qsl((FOLDER / name).read_text(encoding="utf-8")))
    fields.update(changes)
    query = (("secret", secret),) if secret is not None else ()
    return Inbound("POST", URL + (f"?secret={secret}" if secret else ""), query=query,
                   headers={"content-type": "application/x-www-form-urlencoded"},
                   body=urlencode(fields).encode())


def answer(name: str):
    return json.loads((FOLDER / name).read_text(encoding="utf-8"))


def at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def test_the_secret_and_the_account_pass():
    assert amocrm.verify(delivery("webhook__status_won.txt"), SETTINGS) is None


@pytest.mark.parametrize("secret,changes,settings,field", [
    ("wrong-secret", {}, SETTINGS, "secret"),
    (None, {}, SETTINGS, "secret"),
    (SECRET, {"account[id]": "99999999"}, SETTINGS, "account[id]"),
    (SECRET, {}, {**SETTINGS, "hook_secret": None}, "secret"),
    (SECRET, {}, {**SETTINGS, "account_id": None}, "secret"),
])
def test_a_wrong_secret_or_account_is_forbidden(secret, changes, settings, field):
    with pytest.raises(Forbidden) as refused:
        amocrm.verify(delivery("webhook__status_won.txt", secret, **changes), settings)
    assert refused.value.status == 403 and field in refused.value.fields


def test_a_stage_change_carries_the_lead():
    [parsed] = amocrm.parse(delivery("webhook__status_won.txt"), SETTINGS)
    assert parsed.event_type == "lead.status" and len(parsed.delivery_key) == 64
    assert parsed.extra["crm"] == CrmEvent("update", "30011001", CrmLead(
        "30011001", status="142", user="7010001", modified_at=at(1796025940), modified_by="7010001"))


def test_responsible_update_and_delete():
    [moved] = amocrm.parse(delivery("webhook__responsible.txt"), SETTINGS)
    assert moved.extra["crm"].lead.user == "7010002" and moved.extra["crm"].lead.modified_by == "7010009"
    [updated] = amocrm.parse(delivery("webhook__update.txt"), SETTINGS)
    assert updated.extra["crm"].lead.status == "61234503"
    [deleted] = amocrm.parse(delivery("webhook__delete.txt"), SETTINGS)
    assert deleted.extra["crm"] == CrmEvent("delete", "30011001", CrmLead("30011001", deleted=True))


def test_several_items_in_one_post_share_its_delivery_key():
    fields = dict(parse_qsl((FOLDER / "webhook__status_won.txt").read_text(encoding="utf-8")))
    fields.update({key.replace("[0]", "[1]"): value for key, value in fields.items() if key.startswith("leads[")})
    fields["leads[status][1][id]"] = "30011002"
    inbound = Inbound("POST", URL, query=(("secret", SECRET),), body=urlencode(fields).encode())
    items = amocrm.parse(inbound, SETTINGS)
    assert [item.extra["crm"].external_id for item in items] == ["30011001", "30011002"]
    assert len({item.delivery_key for item in items}) == 1
    [alone] = amocrm.parse(delivery("webhook__status_won.txt"), SETTINGS)
    assert alone.delivery_key != items[0].delivery_key


def test_other_entities_and_adds_are_acknowledged_and_bad_ids_refused():
    [contact] = amocrm.parse(delivery("webhook__contact_update.txt"), SETTINGS)
    assert contact.ignore == "no lead in the webhook (another entity's event)"
    update = (FOLDER / "webhook__update.txt").read_text(encoding="utf-8")
    added = Inbound("POST", URL, query=(("secret", SECRET),), body=update.replace("%5Bupdate%5D", "%5Badd%5D").encode())
    [add] = amocrm.parse(added, SETTINGS)
    assert add.event_type == "lead.add" and add.ignore.startswith("leads[add]: the hub follows only")
    with pytest.raises(BadRequest) as bad:
        amocrm.parse(delivery("webhook__delete.txt", **{"leads[delete][0][id]": "x"}), SETTINGS)
    assert bad.value.fields == {"leads[delete][id]": "required"}


def test_only_a_short_digital_pipeline_body_is_read_back(api, throttle):
    [short] = amocrm.parse(delivery("webhook__digital_pipeline_status.txt"), SETTINGS)
    assert short.extra["crm"] == CrmEvent("update", "30011001", None)
    api.add(responses.GET, f"{BASE}/api/v4/leads/30011001", json=answer("lead_get__lost.json"))
    lead = amocrm.read_back(short.extra["crm"], SETTINGS, throttle)
    assert lead == CrmLead("30011001", status="143", user="7010001", modified_at=at(1796025990), modified_by="7010001")
    [full] = amocrm.parse(delivery("webhook__status_won.txt"), SETTINGS)
    assert amocrm.read_back(full.extra["crm"], SETTINGS, throttle) == full.extra["crm"].lead
    assert len(api.calls) == 1 and throttle.seen == [0]


def test_a_lead_gone_from_the_account_reads_back_as_deleted(api, throttle):
    api.add(responses.GET, f"{BASE}/api/v4/leads/30011001", status=404,
            json={"title": "Not Found", "status": 404, "detail": "Not found"})
    assert amocrm.read_back(CrmEvent("update", "30011001"), SETTINGS, throttle) == CrmLead("30011001", deleted=True)


def test_polling_by_updated_at_until_there_is_no_next_page(api, throttle):
    first = matchers.query_param_matcher({"filter[updated_at][from]": "1796025000", "order[updated_at]": "asc",
                                          "limit": "250", "page": "1"})
    api.add(responses.GET, f"{BASE}/api/v4/leads", json=answer("leads_list__updated.json"), match=[first])
    api.add(responses.GET, f"{BASE}/api/v4/leads", status=204)
    pages = list(amocrm.changed_since(SETTINGS, at(1796025000), throttle))
    assert pages == [[CrmLead("30011001", status="142", user="7010002", modified_at=at(1796025940),
                              modified_by="7010002")], []]
    assert "page=2" in api.calls[1].request.url


@pytest.mark.parametrize("status,settings,expected", [
    ("142", {}, "converted"), ("143", {}, "junk"),
    ("61234503", {}, None),
    ("61234503", {"status_ids": {"in_progress": 61234503}}, "in_progress"),
    ("61234504", {"status_ids": {"in_progress": [61234503, 61234504]}}, "in_progress"),
])
def test_won_and_lost_in_every_pipeline_other_stages_as_mapped(status, settings, expected):
    assert amocrm.hub_status(CrmLead("1", status=status), settings) == expected


def test_what_a_push_sends_is_known_for_echoes():
    lead = {"number": 1, "status": "converted", "assignee": {"id": "anna"}}
    hub = {"status": "converted", "assignee": "anna", "stage": None}
    assert amocrm.sent_state(lead, SETTINGS, created=True) == {"status": None, "user": "7010001", "hub": hub}
    assert amocrm.sent_state(lead, SETTINGS, created=False) == {"status": "142", "user": "7010001", "hub": hub}
    moved = {**SETTINGS, "last_pushed": {"status": "converted", "assignee": "boris"}}  # only the owner moved
    assert amocrm.sent_state(lead, moved, created=False) == {"status": None, "user": "7010001", "hub": hub}


def test_connect_prints_the_url_with_its_secret_and_the_events():
    lines = amocrm.connect(SETTINGS, URL, lambda: None)
    assert f"  URL: {URL}?secret={SECRET}" in lines
    assert any("update_lead, status_lead, responsible_lead, delete_lead" in line for line in lines)
    with pytest.raises(PermanentFailure):
        amocrm.connect({**SETTINGS, "hook_secret": None}, URL, lambda: None)
