"""Pipeline stages both ways through the CRMs: a CRM stage mapped in ``stage_ids`` read back
moves the hub's stage; a hub stage change pushes the mapped CRM stage, and its echo changes
nothing. Fake Bitrix24 and amoCRM (``crm_portals``) on a fixed clock."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.delivery.crm_portals import AMO, FORM, SECRET, START, TOKEN, WEBHOOK
from tests.helpers import Clock

PIPELINES = {"sales": {"stages": [{"name": "introduction", "limit": "2d"}, {"name": "offer", "limit": "3d"},
                                  {"name": "invoice"}]},
             "service": {"when": {"form": ["tilda"]}, "stages": [{"name": "diagnosis"}, {"name": "repair"}]}}


@pytest.fixture
def config_document(config_document):
    config_document["pipelines"] = PIPELINES
    config_document["default_pipeline"] = "sales"
    return config_document


@pytest.fixture
def clock(hub):
    return Clock(hub, START)


@pytest.fixture
def bitrix(config_document, monkeypatch):
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", WEBHOOK)
    monkeypatch.setenv("BITRIX24_APP_TOKEN", TOKEN)
    config_document["crm"] = [
        {"target": "bitrix24", "webhook_url_env": "BITRIX24_WEBHOOK_URL", "application_token_env": "BITRIX24_APP_TOKEN",
         "team": {"anna": 17, "boris": 18},
         "stage_ids": {"offer": "UC_OFFER", "invoice": ["UC_INVOICE", "UC_BILL"], "repair": "UC_REPAIR"}}]


@pytest.fixture
def amo(config_document, monkeypatch):
    monkeypatch.setenv("AMOCRM_TOKEN", "long-lived-token")
    monkeypatch.setenv("AMOCRM_HOOK_SECRET", SECRET)
    config_document["crm"] = [
        {"target": "amocrm", "base_url": AMO, "token_env": "AMOCRM_TOKEN", "hook_secret_env": "AMOCRM_HOOK_SECRET",
         "account_id": 31234567, "team": {"anna": 7010001, "boris": 7010002},
         "stage_ids": {"offer": 61234503, "invoice": 61234504}}]


def new_lead(client, run_jobs, api) -> int:
    response = client.post("/hooks/forms/landing", data={"name": "Ivan", "phone": "+79161234567"})
    run_jobs()
    return api.get(f"/api/events/{response.get_json()['event_id']}").get_json()["lead_number"]


def stage_history(lead: dict) -> list[tuple]:
    return [(h["actor"], h["action"], h["details"].get("stage")) for h in lead["history"]
            if h["action"].startswith("stage_") or h["action"] == "crm_unmapped"]


def test_a_bitrix24_stage_read_back_moves_the_hub_stage(portal, clock, client, run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)
    [crm_id] = portal.leads
    clock.now = START + timedelta(hours=1)
    portal.manager_changes(crm_id, by=17, at=clock.now, STATUS_ID="UC_BILL")  # read back as invoice, too
    client.post("/hooks/crm/bitrix24", data=portal.event("ONCRMLEADUPDATE", crm_id, TOKEN), content_type=FORM)
    run_jobs()
    lead = api.get(f"/api/leads/{number}").get_json()
    assert (lead["status"], lead["stage"]["name"], lead["stage"]["pipeline"]) == ("in_progress", "invoice", "sales")
    assert stage_history(lead) == [("crm:bitrix24 user 17 (anna)", "stage_entered", "invoice")]
    assert lead["sync"][0]["readback"]["hub_stage"] == "invoice"
    assert portal.calls["crm.lead.update"] == 0  # never pushed back to where it came from


def test_a_hub_stage_change_pushes_the_mapped_bitrix24_stage_and_its_echo_changes_nothing(
        portal, clock, client, run_jobs, api):
    number = new_lead(client, run_jobs, api)
    [crm_id] = portal.leads
    clock.now = START + timedelta(minutes=10)
    api.patch(f"/api/leads/{number}", json={"status": "in_progress"})  # introduction: no CRM stage mapped
    run_jobs()
    assert portal.leads[crm_id]["STATUS_ID"] == "IN_PROCESS"  # the status's stage stands in
    clock.now = START + timedelta(minutes=20)
    api.patch(f"/api/leads/{number}", json={"stage": "invoice"})
    run_jobs()
    assert portal.leads[crm_id]["STATUS_ID"] == "UC_INVOICE"  # a list: the first is pushed
    client.post("/hooks/crm/bitrix24", data=portal.event("ONCRMLEADUPDATE", crm_id, TOKEN), content_type=FORM)
    run_jobs()
    lead = api.get(f"/api/leads/{number}").get_json()
    assert lead["sync"][0]["readback"]["outcome"] == "echo"
    assert [entry[2] for entry in stage_history(lead)] == ["introduction", "introduction", "invoice"]


def test_a_crm_stage_the_leads_pipeline_lacks_is_recorded_and_changes_nothing(portal, clock, client, run_jobs, api):
    number = new_lead(client, run_jobs, api)
    [crm_id] = portal.leads
    clock.now = START + timedelta(hours=1)
    portal.manager_changes(crm_id, by=17, at=clock.now, STATUS_ID="UC_REPAIR")  # a stage of service, not sales
    client.post("/hooks/crm/bitrix24", data=portal.event("ONCRMLEADUPDATE", crm_id, TOKEN), content_type=FORM)
    run_jobs()
    lead = api.get(f"/api/leads/{number}").get_json()
    assert (lead["status"], lead["stage"]) == ("new", None)
    unmapped = [h["details"] for h in lead["history"] if h["action"] == "crm_unmapped"]
    assert unmapped == [{"target": "bitrix24", "status": "UC_REPAIR"}]


def test_amocrm_stages_both_ways(account, clock, client, run_jobs, api):
    number = new_lead(client, run_jobs, api)
    [crm_id] = account.leads
    clock.now = START + timedelta(hours=1)
    account.manager_changes(crm_id, by=7010002, at=clock.now, status_id=61234503)
    client.post(f"/hooks/crm/amocrm?secret={SECRET}", data=account.webhook("status", crm_id), content_type=FORM)
    run_jobs()
    lead = api.get(f"/api/leads/{number}").get_json()
    assert (lead["status"], lead["stage"]["name"]) == ("in_progress", "offer")
    assert account.calls["PATCH patch"] == 0
    clock.now = START + timedelta(hours=2)
    api.patch(f"/api/leads/{number}", json={"stage": "next"})
    run_jobs()
    assert account.leads[crm_id]["status_id"] == 61234504
    api.patch(f"/api/leads/{number}", json={"outcome": "won"})
    run_jobs()
    assert account.leads[crm_id]["status_id"] == 142  # closed as won: amoCRM's won stage
