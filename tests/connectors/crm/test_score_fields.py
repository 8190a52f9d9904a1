"""The lead's score in the CRMs: ``score_fields`` maps its class, probability (whole percent)
and value to Bitrix24 fields and to amoCRM's price or custom fields, on create and update."""
from __future__ import annotations

import json

import pytest
import responses

from connectors.crm import amocrm, bitrix24, score_values
from hub.config import ConfigError, load_config

from tests.connectors.crm import test_amocrm as amo
from tests.connectors.crm import test_bitrix24 as b24

SCORE = {"class": "A", "probability": 0.3456, "value": 120000.0, "details": {"text": "…"}}
BITRIX_FIELDS = {"class": "UF_CRM_LEAD_CLASS", "probability": "UF_CRM_LEAD_PROBABILITY", "value": "OPPORTUNITY"}
AMO_FIELDS = {"class": 582901, "probability": "LEAD_PROBABILITY", "value": "price"}


def test_score_values_maps_what_is_configured():
    lead = {"score": SCORE}
    assert score_values(lead, {"score_fields": BITRIX_FIELDS}) == {
        "UF_CRM_LEAD_CLASS": "A", "UF_CRM_LEAD_PROBABILITY": 35, "OPPORTUNITY": 120000.0}
    assert score_values(lead, {"score_fields": {"class": "UF_CRM_CLASS", "value": None}}) == {"UF_CRM_CLASS": "A"}
    thin = {"score": {**SCORE, "probability": None}}
    assert "UF_CRM_LEAD_PROBABILITY" not in score_values(thin, {"score_fields": BITRIX_FIELDS})  # never a fake 0
    assert score_values({"score": None}, {"score_fields": BITRIX_FIELDS}) == {}
    assert score_values(lead, {}) == {}


def test_bitrix24_create_and_update_carry_the_score(api, throttle):
    settings = {**b24.SETTINGS, "score_fields": BITRIX_FIELDS}
    lead = {**b24.LEAD, "score": SCORE}
    api.add(responses.POST, f"{b24.API}/crm.lead.add", json=b24.answer("lead_add__ok.json"))
    bitrix24.push(lead, settings, None, 1, throttle)
    fields = json.loads(api.calls[0].request.body)["fields"]
    assert [fields[name] for name in BITRIX_FIELDS.values()] == ["A", 35, 120000.0]
    api.add(responses.POST, f"{b24.API}/crm.lead.update", json={"result": True})
    bitrix24.push({**lead, "score": {**SCORE, "class": "B"}}, {**settings, "last_pushed": {
        "status": "new", "assignee": "anna"}}, "42", 1, throttle)
    update = json.loads(api.calls[1].request.body)
    assert update["fields"] == {"UF_CRM_LEAD_CLASS": "B", "UF_CRM_LEAD_PROBABILITY": 35, "OPPORTUNITY": 120000.0}


def test_amocrm_create_and_update_carry_the_score(api, throttle):
    settings = {**amo.SETTINGS, "score_fields": AMO_FIELDS}
    lead = {**amo.LEAD, "score": SCORE}
    item = amocrm.complex_lead(lead, settings)
    assert item["price"] == 120000
    assert {"field_id": 582901, "values": [{"value": "A"}]} in item["custom_fields_values"]
    assert {"field_code": "LEAD_PROBABILITY", "values": [{"value": 35}]} in item["custom_fields_values"]
    api.add(responses.PATCH, f"{amo.BASE}/api/v4/leads/1234567", json=amo.answer("lead_patch__updated.json"))
    amocrm.push(lead, {**settings, "last_pushed": {"status": amo.LEAD["status"], "assignee": "anna"}},
                "1234567", 1, throttle)
    assert json.loads(api.calls[0].request.body) == {"price": 120000, "custom_fields_values": [
        {"field_id": 582901, "values": [{"value": "A"}]},
        {"field_code": "LEAD_PROBABILITY", "values": [{"value": 35}]}]}


def test_score_fields_are_checked(monkeypatch):
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", "https://acme.bitrix24.ru/rest/7/code/")
    target = {"target": "bitrix24", "webhook_url_env": "BITRIX24_WEBHOOK_URL"}
    with pytest.raises(ConfigError) as error:
        load_config(document={"crm": [{**target, "score_fields": {"clas": "UF_X", "value": ["OPPORTUNITY"]}}]})
    assert error.value.problems == [
        "crm.0.score_fields.clas: unknown key; did you mean 'class'?",
        "crm.0.score_fields.value: a CRM field name or id",
        "crm.0.score_fields: leads have no score without a scoring: section"]
    config = load_config(document={"scoring": {}, "crm": [{**target, "score_fields": BITRIX_FIELDS}]})
    assert config["crm"][0]["score_fields"] == BITRIX_FIELDS
