"""The score through CRM sync: a new lead reaches Bitrix24 with its class, probability and
value in the configured fields, and a head's override pushes the lead again with the new class."""
from __future__ import annotations

import json
import re

import pytest
import responses

from hub.delivery import crm
from hub.pipeline import process_pending

from tests.helpers import insert_pending_forms
from tests.pipeline.test_score import SCORING

WEBHOOK = "https://portal.example.bitrix24.ru/rest/1/s3cretcode/"
FIELDS = {"class": "UF_CRM_LEAD_CLASS", "probability": "UF_CRM_LEAD_PROBABILITY", "value": "OPPORTUNITY"}


@pytest.fixture
def config_document(config_document, monkeypatch):
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", WEBHOOK)
    config_document["scoring"] = SCORING
    config_document["crm"] = [{"target": "bitrix24", "webhook_url_env": "BITRIX24_WEBHOOK_URL",
                               "team": {"anna": 17, "boris": 18}, "score_fields": FIELDS}]
    return config_document


def test_the_score_reaches_the_crm_and_an_override_follows(hub, api):
    insert_pending_forms(hub, ["+79161234567"])
    process_pending(hub)
    with responses.RequestsMock() as portal:
        portal.add(responses.POST, re.compile(re.escape(WEBHOOK) + "crm.lead.add"), json={"result": 100})
        crm.deliver_due(hub)
        created = json.loads(portal.calls[0].request.body)["fields"]
    assert (created["UF_CRM_LEAD_CLASS"], created["OPPORTUNITY"]) == ("C", 50000.0)
    assert "UF_CRM_LEAD_PROBABILITY" not in created  # not learned yet
    assert api.post("/api/leads/1/score", json={"change": "up", "by": "vera"}).status_code == 200
    with responses.RequestsMock() as portal:
        portal.add(responses.POST, re.compile(re.escape(WEBHOOK) + "crm.lead.update"), json={"result": True})
        crm.deliver_due(hub)
        updated = json.loads(portal.calls[0].request.body)
    assert updated["id"] == "100" and updated["fields"] == {"UF_CRM_LEAD_CLASS": "B", "OPPORTUNITY": 50000.0}
