"""The scoring: section: validated like every section (the nearest known key for a typo), and
routing on a score only where there is one."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from hub.config import ConfigError, load_config
from hub.runtime import cli


def problems(document: dict) -> list[str]:
    with pytest.raises(ConfigError) as error:
        load_config(document=document)
    return error.value.problems


def test_a_full_scoring_section_loads():
    config = load_config(document={"scoring": {
        "rules": [{"name": "ads", "when": {"utm_source": ["yandex"], "fields": {"budget": True}}, "points": 20}],
        "classes": {"A": {"points": 30, "probability": 0.5}, "B": {"points": 10}},
        "amount": {"field": "budget", "defaults": [{"when": {"form": ["wholesale"]}, "amount": 500000}],
                  "default": 50000},
        "model": {"fields": ["utm_term", "region", "fields.company_size"], "min_closed": 300}}})
    scoring = config["scoring"]
    assert scoring["rules"][0]["when"]["fields"] == {"budget": True}
    assert scoring["model"] == {"fields": ["utm_term", "region", "fields.company_size"], "min_closed": 300,
                                "retrain_at": "03:00"}
    assert load_config(document={})["scoring"] is None


def test_mistakes_are_named_with_the_nearest_key():
    assert problems({"scoring": {"rulez": [], "classes": {"C": {"points": 1}, "A": {"points": 1, "probabilty": 1}},
                                 "model": {"fields": ["regoin"], "retrain_at": "25:00"},
                                 "amount": {"feild": "budget"}}}) == [
        "scoring.classes.C: Must be one of: A, B.",
        "scoring.classes.A.probabilty: unknown key; did you mean 'probability'?",
        "scoring.amount.feild: unknown key; did you mean 'field'?",
        "scoring.model.fields.0: unknown field 'regoin'; did you mean 'region'? (or fields.<form field>)",
        "scoring.model.retrain_at: a time of day, HH:MM",
        "scoring.rulez: unknown key; did you mean 'rules'?",
    ]
    assert problems({"scoring": {"rules": [{"when": {"utm_sourse": ["x"]}, "points": "many"}]}}) == [
        "scoring.rules.0.when.utm_sourse: unknown key; did you mean 'utm_source'?",
        "scoring.rules.0.points: Not a valid integer.",
    ]
    assert problems({"scoring": {"classes": {"A": {"points": 5}, "B": {"points": 10}}}}) == [
        "scoring.classes: A needs at least as many points as B"]


def test_routing_on_a_score_needs_scoring():
    routing = [{"name": "a", "when": {"class": ["A"], "min_probability": 0.5}, "assign": {"to": []}}]
    assert problems({"routing": routing}) == [
        "routing.0.when.class: leads have no class without a scoring: section",
        "routing.0.when.min_probability: leads have no probability without scoring.model"]
    assert problems({"routing": routing, "scoring": {}}) == [
        "routing.0.when.min_probability: leads have no probability without scoring.model"]
    assert problems({"routing": [{"name": "a", "when": {"class": ["D"]}}], "scoring": {}}) == [
        "routing.0.when.class.0: Must be one of: A, B, C."]


def test_check_config_reports_scoring_problems(tmp_path):
    path = tmp_path / "hub.yaml"
    path.write_text("scoring:\n  rules:\n    - {when: {chanel: [form]}, points: 5}\n", encoding="utf-8")
    result = CliRunner().invoke(cli.main, ["check-config", str(path)])
    assert result.exit_code == 1
    assert result.output.strip() == "scoring.rules.0.when.chanel: unknown key; did you mean 'channel'?"
