"""The score in the lead JSON, and the manual override through the API: a head or director
moves the class by one; the override is in the history and survives rescoring and retraining."""
from __future__ import annotations

import pytest

from hub.pipeline import score

from tests.pipeline.test_score import SCORING, seed_history

FORM = {"name": "Ivan", "phone": "+79161234567", "email": "ivan@example.com", "utm_source": "google",
        "utm_term": "erp"}


@pytest.fixture
def config_document(config_document):
    config_document["scoring"] = SCORING
    return config_document


def new_lead(client, run_jobs, api, form=FORM) -> dict:
    response = client.post("/hooks/forms/landing", data=form)
    assert response.status_code == 202
    run_jobs()
    event = api.get(f"/api/events/{response.get_json()['event_id']}").get_json()
    return api.get(f"/api/leads/{event['lead_number']}").get_json()


def override(api, number, change, by="vera"):
    return api.post(f"/api/leads/{number}/score", json={"change": change, "by": by})


def test_the_lead_json_carries_its_score(client, run_jobs, api):
    lead = new_lead(client, run_jobs, api)
    assert lead["score"]["class"] == "B"  # +10 business hours
    assert lead["score"]["value"] == 50000.0
    assert lead["score"]["probability"] is None  # no model trained yet
    assert lead["score"]["details"]["text"].startswith("+10 business hours = 10 points (class B)")


def test_a_head_raises_the_class_and_it_is_in_the_history(client, run_jobs, api):
    number = new_lead(client, run_jobs, api)["number"]
    response = override(api, number, "up")
    assert response.status_code == 200, response.get_json()
    lead = response.get_json()
    assert lead["score"]["class"] == "A"
    assert lead["score"]["details"]["override"]["by"] == "vera"
    assert lead["score"]["details"]["text"].endswith("; class A set by vera (scored B)")
    entry = [h for h in lead["history"] if h["action"] == "score_override"]
    assert entry == [{**entry[0], "actor": "vera", "details": {"from": "B", "to": "A", "scored": "B"}}]
    assert override(api, number, "up").status_code == 409  # already A
    lowered = override(api, number, "down", by="oleg").get_json()  # a director
    assert lowered["score"]["class"] == "B"
    reset = override(api, number, "reset").get_json()
    assert reset["score"]["class"] == "B" and "override" not in reset["score"]["details"]


@pytest.mark.parametrize("body,status,field", [
    ({"change": "up", "by": "anna"}, 403, "by"),  # a manager
    ({"change": "up", "by": "nobody"}, 422, "by"),
    ({"change": "up"}, 422, "by"),
    ({"change": "sideways", "by": "vera"}, 422, "change"),
    ({"change": 1, "by": "vera"}, 422, "change"),
])
def test_overrides_are_refused_naming_the_field(client, run_jobs, api, body, status, field):
    number = new_lead(client, run_jobs, api)["number"]
    response = api.post(f"/api/leads/{number}/score", json=body)
    assert response.status_code == status
    assert field in response.get_json()["fields"]
    assert api.get(f"/api/leads/{number}").get_json()["score"]["class"] == "B"


def test_an_unscored_lead_cannot_be_overridden(config_document, request):
    del config_document["scoring"]
    client, run_jobs, api = (request.getfixturevalue(name) for name in ("client", "run_jobs", "api"))
    lead = new_lead(client, run_jobs, api)
    assert lead["score"] is None
    response = override(api, lead["number"], "up")
    assert response.status_code == 409 and response.get_json()["fields"] == {"change": "the lead has no score"}


def test_an_override_survives_rescoring_and_retraining(client, run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)["number"]
    assert override(api, number, "down").get_json()["score"]["class"] == "C"
    seed_history(hub)
    score.train(hub)  # learns, then rescores the open leads
    lead = api.get(f"/api/leads/{number}").get_json()
    assert lead["score"]["class"] == "C"
    assert lead["score"]["probability"] is not None  # the rescoring did happen
    assert lead["score"]["details"]["override"]["class"] == "C"
    assert lead["score"]["details"]["scored_class"] == "B"
    hub.config["scoring"]["rules"].append({"name": "everyone", "when": {}, "points": 50})
    score.rescore(hub)
    lead = api.get(f"/api/leads/{number}").get_json()
    assert lead["score"]["class"] == "C" and lead["score"]["details"]["scored_class"] == "A"
    assert "+50 everyone" in lead["score"]["details"]["text"]


def test_rescoring_keeps_the_leads_updated_at(client, run_jobs, api, hub):
    lead = new_lead(client, run_jobs, api)
    seed_history(hub)
    score.train(hub)
    again = api.get(f"/api/leads/{lead['number']}").get_json()
    assert again["updated_at"] == lead["updated_at"] and again["score"]["probability"] is not None


def test_the_openapi_document_describes_the_override(api):
    document = api.get("/api/openapi.json").get_json()
    operation = document["paths"]["/api/leads/{number}/score"]["post"]
    assert set(operation["responses"]) >= {"200", "403", "409", "422"}
    assert document["components"]["schemas"]["Lead"]["properties"]["score"]["properties"]["class"]["enum"] == [
        "A", "B", "C"]


def test_the_lead_list_filters_by_class(client, run_jobs, api):
    best = new_lead(client, run_jobs, api, {**FORM, "phone": "+79161230001", "email": "a@example.com",
                                            "utm_source": "yandex"})
    plain = new_lead(client, run_jobs, api, {**FORM, "phone": "+79161230002", "email": "b@example.com"})
    assert (best["score"]["class"], plain["score"]["class"]) == ("A", "B")
    assert [lead["number"] for lead in api.get("/api/leads?class=A").get_json()["items"]] == [best["number"]]
    refused = api.get("/api/leads?class=D")
    assert refused.status_code == 400 and "class" in refused.get_json()["fields"]
