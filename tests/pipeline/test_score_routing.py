"""Routing on the score: the pipeline scores a lead before it routes it, so a rule can send
A leads to the senior managers, and one can ask for the learned probability."""
from __future__ import annotations

import pytest

from hub.config import load_config
from hub.pipeline import score
from hub.pipeline.route import Counters, decide

from tests.pipeline.test_score import SCORING, seed_history

SENIOR = {"id": "sergei", "name": "Sergei Senior", "role": "manager", "email": "sergei@example.com"}


@pytest.fixture
def config_document(config_document):
    config_document["team"].append(SENIOR)
    config_document["scoring"] = SCORING
    config_document["routing"] = [
        {"name": "class-a", "when": {"class": ["A"]}, "assign": {"to": ["sergei"]}},
        {"name": "likely", "when": {"min_probability": 0.6}, "assign": {"to": ["boris"]}},
        {"name": "rest", "when": {}, "assign": {"to": ["anna"]}},
    ]
    return config_document


def lead_for(client, run_jobs, api, **form) -> dict:
    response = client.post("/hooks/forms/landing", data={"name": "Ivan", **form})
    assert response.status_code == 202
    run_jobs()
    event = api.get(f"/api/events/{response.get_json()['event_id']}").get_json()
    return api.get(f"/api/leads/{event['lead_number']}").get_json()


def test_a_leads_go_to_the_senior_manager(client, run_jobs, api):
    best = lead_for(client, run_jobs, api, phone="+79161234567", email="a@example.com", utm_source="yandex")
    assert best["score"]["class"] == "A"
    assert best["assignee"]["id"] == "sergei" and best["assignment_reason"].startswith("rule 'class-a'")
    plain = lead_for(client, run_jobs, api, phone="+79161234568", email="b@example.com")
    assert plain["score"]["class"] == "B"
    assert plain["assignee"]["id"] == "anna"  # no probability yet: the probability rule does not match


def test_routing_on_the_learned_probability(client, run_jobs, api, hub):
    seed_history(hub)
    score.train(hub)
    likely = lead_for(client, run_jobs, api, phone="+79161234569", email="c@example.com", utm_term="crm")
    assert likely["score"]["class"] == "B" and likely["score"]["probability"] > 0.6
    assert likely["assignee"]["id"] == "boris"
    unlikely = lead_for(client, run_jobs, api, phone="+79161234560", utm_term="erp")
    assert unlikely["score"]["probability"] < 0.6 and unlikely["assignee"]["id"] == "anna"


@pytest.mark.parametrize("when,facts,expected", [
    ({"class": ["A", "B"]}, {"class": "B"}, True),
    ({"class": ["A"]}, {"class": "C"}, False),
    ({"class": ["A"]}, {"class": None}, False),
    ({"min_probability": 0.5}, {"probability": 0.5}, True),
    ({"min_probability": 0.5}, {"probability": None}, False),
    ({"max_probability": 0.2}, {"probability": 0.3}, False),
    ({"fields": {"budget": True}}, {"fields": {"budget": "100"}}, True),
    ({"fields": {"budget": False}}, {"fields": {"budget": "  "}}, True),
    ({"fields": {"size": ["50+", "200+"]}}, {"fields": {"size": "50+"}}, True),
    ({"fields": {"size": ["50+"]}}, {"fields": {}}, False),
    ({"has_email": False}, {"has_email": True}, False),
])
def test_score_and_form_field_conditions(when, facts, expected):
    config = load_config(document={"team": [SENIOR], "scoring": {"model": {"fields": ["channel"]}},
                                   "routing": [{"name": "r", "when": when, "assign": {"to": ["sergei"]}}]})
    decision = decide(config, {"fields": {}, **facts}, Counters())
    assert (decision.rule is not None) is expected


def test_route_simulate_scores_the_samples(tmp_path, monkeypatch, database_url):
    import yaml
    from click.testing import CliRunner

    from hub import context
    from hub.runtime.cli import main

    config_path = tmp_path / "hub.yaml"
    config_path.write_text(yaml.safe_dump({"team": [SENIOR, {"id": "anna", "name": "Anna"}], "scoring": SCORING,
                                           "routing": [{"name": "class-a", "when": {"class": ["A"]},
                                                        "assign": {"to": ["sergei"]}}]}), encoding="utf-8")
    samples = tmp_path / "samples.yaml"
    samples.write_text(yaml.safe_dump([
        {"name": "Ivan", "phone": "+79161234567", "email": "i@example.com", "source": {"utm_source": "yandex"}},
        {"name": "Olga", "phone": "+79161234568", "fields": {"budget": "100000"}}]), encoding="utf-8")
    monkeypatch.setenv("HUB_CONFIG", str(config_path))
    monkeypatch.setenv("DATABASE_URL", database_url)
    context.install(None)
    result = CliRunner().invoke(main, ["route", "simulate", str(samples)])
    context.install(None)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("1. form Ivan (class A) -> sergei: rule 'class-a'")
    assert lines[1].startswith("2. form Olga (class C) -> anna: no routing rule matched")  # 10 − 15 + 10 = 5 points
