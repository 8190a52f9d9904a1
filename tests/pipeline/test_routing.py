"""Routing rules: conditions, strategies and explanations, table-driven."""
from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from hub.config import load_config
from hub.pipeline.route import Counters, decide, facts_of, matches
from hub.store.models import Lead

TEAM = [
    {"id": "anna", "name": "Anna", "role": "manager", "groups": ["b2b"]},
    {"id": "boris", "name": "Boris", "role": "manager", "groups": ["b2b"], "weight": 3},
    {"id": "clara", "name": "Clara", "role": "manager", "groups": ["retail"]},
    {"id": "dmitry", "name": "Dmitry", "role": "manager", "away": True, "groups": ["retail"]},
    {"id": "vera", "name": "Vera", "role": "head"},
]


def config_with(routing=None, **extra):
    return load_config(document={"team": TEAM, "routing": routing or [], **extra})


def facts(channel="form", phone="+79161234567", message="", open_now=True, known=False, **source):
    lead = Lead(channel=channel, phone=phone, message=message, source=source)
    return facts_of(lead, open_now, known)


@pytest.mark.parametrize("when,lead_facts,expected", [
    ({"channel": ["call"]}, facts(channel="call"), True),
    ({"channel": ["call"]}, facts(channel="form"), False),
    ({"utm_source": ["yandex"], "utm_medium": ["cpc"]}, facts(utm_source="yandex", utm_medium="cpc"), True),
    ({"utm_source": ["yandex"], "utm_medium": ["cpc"]}, facts(utm_source="yandex"), False),
    ({"form": ["landing"]}, facts(form="landing"), True),
    ({"mailbox": ["sales"]}, facts(mailbox="support"), False),
    ({"called_number": ["+74951234567"]}, facts(called_number="+74951234567"), True),
    ({"country": ["RU"]}, facts(phone="+79161234567"), True),
    ({"country": ["KZ"]}, facts(phone="+77011234567"), True),
    ({"country": ["RU"]}, facts(phone="+77011234567"), False),
    ({"region": ["Moscow"]}, facts(phone="+74951234567"), True),
    ({"region": ["Moscow"]}, facts(phone="+78123123456"), False),
    ({"words": ["опт", "wholesale"]}, facts(message="Интересует ОПТовая поставка"), True),
    ({"words": ["опт"]}, facts(message="одна штука"), False),
    ({"business_hours": False}, facts(open_now=False), True),
    ({"business_hours": False}, facts(open_now=True), False),
    ({"known_client": True}, facts(known=True), True),
    ({"known_client": True}, facts(known=False), False),
    ({}, facts(), True),
])
def test_conditions(when, lead_facts, expected):
    assert matches(when, lead_facts) is expected


def route_many(config, n, **lead_facts):
    counters = Counters()
    chosen = []
    for _ in range(n):
        decision = decide(config, facts(**lead_facts), counters)
        counters.assigned(decision.member_id)
        chosen.append(decision.member_id)
    return chosen, decision


def test_round_robin_over_a_group_skips_people_away():
    config = config_with([{"name": "retail", "when": {}, "assign": {"group": "retail"}}])
    chosen, decision = route_many(config, 3)
    assert chosen == ["clara", "clara", "clara"]  # dmitry is away
    assert decision.reason == "rule 'retail' -> round-robin over [clara] (turn 3)"


def test_round_robin_over_named_people():
    config = config_with([{"name": "ads", "when": {"utm_source": ["yandex"]},
                           "assign": {"to": ["anna", "boris"]}}])
    chosen, decision = route_many(config, 4, utm_source="yandex")
    assert chosen == ["anna", "boris", "anna", "boris"]
    assert decision.reason == "rule 'ads' -> round-robin over [anna, boris] (turn 4)"


def test_weighted_follows_the_weights():
    config = config_with([{"name": "b2b", "when": {}, "assign": {"group": "b2b", "strategy": "weighted"}}])
    chosen, decision = route_many(config, 8)
    assert chosen.count("boris") == 6 and chosen.count("anna") == 2
    assert "weighted round-robin over [anna×1, boris×3]" in decision.reason


def test_least_busy_picks_the_fewest_open_leads():
    config = config_with([{"name": "b2b", "when": {}, "assign": {"group": "b2b", "strategy": "least_busy"}}])
    counters = Counters()
    counters.open = {"anna": 5, "boris": 2}
    decisions = []
    for _ in range(4):
        decision = decide(config, facts(), counters)
        counters.assigned(decision.member_id)
        decisions.append(decision)
    assert [d.member_id for d in decisions] == ["boris", "boris", "boris", "anna"]
    assert decisions[0].reason == "rule 'b2b' -> least-busy over [anna, boris] (open leads: anna 5, boris 2)"


def test_first_matching_rule_wins_and_no_match_falls_back():
    config = config_with([
        {"name": "calls", "when": {"channel": ["call"]}, "assign": {"to": ["clara"]}},
        {"name": "everything", "when": {}, "assign": {"to": ["anna"]}},
    ])
    assert decide(config, facts(channel="call"), Counters()).member_id == "clara"
    assert decide(config, facts(channel="form"), Counters()).member_id == "anna"
    fallback = decide(config_with([{"name": "calls", "when": {"channel": ["call"]},
                                    "assign": {"to": ["clara"]}}]), facts(), Counters())
    assert fallback.reason == "no routing rule matched -> round-robin over [anna, boris, clara] (turn 1)"


def test_a_rule_without_assign_round_robins_over_every_manager():
    config = config_with([{"name": "calls", "when": {"channel": ["call"]}}])
    assert config["routing"][0]["assign"]["strategy"] == "round_robin"
    decision = decide(config, facts(channel="call"), Counters())
    assert decision.reason == "rule 'calls' -> round-robin over [anna, boris, clara] (turn 1)"


def test_rule_with_everyone_away_says_so():
    config = config_with([{"name": "dmitry-only", "when": {}, "assign": {"to": ["dmitry"]}}])
    decision = decide(config, facts(), Counters())
    assert decision.reason.startswith("rule 'dmitry-only' matched but everyone in it is away")
    assert decision.member_id == "anna"


def test_known_client_goes_back_to_the_owner_unless_away():
    config = config_with()
    assert decide(config, facts(known=True), Counters(), ("clara", 12)).reason == \
        "known client -> back to their owner clara (lead 12)"
    assert decide(config, facts(known=True), Counters(), ("dmitry", 12)).member_id == "anna"


def test_nobody_to_assign():
    config = load_config(document={"team": [{"id": "vera", "name": "Vera", "role": "head"}]})
    decision = decide(config, facts(), Counters())
    assert decision.member_id is None and decision.reason.startswith("no manager available")


def test_config_names_unknown_people_and_groups():
    from hub.config import ConfigError

    with pytest.raises(ConfigError) as error:
        config_with([{"name": "x", "when": {}, "assign": {"to": ["ghost"], "group": "nobody"}}])
    assert error.value.problems == ["routing.0.assign.to: unknown team member 'ghost'",
                                    "routing.0.assign.group: no team member is in group 'nobody'"]


def test_route_simulate_prints_assignee_and_reason(tmp_path, monkeypatch, database_url):
    from hub import context
    from hub.runtime.cli import main

    config_path = tmp_path / "hub.yaml"
    config_path.write_text(yaml.safe_dump({"team": TEAM, "routing": [
        {"name": "wholesale", "when": {"words": ["опт"]}, "assign": {"group": "b2b", "strategy": "weighted"}}]},
        allow_unicode=True), encoding="utf-8")
    samples = tmp_path / "samples.yaml"
    samples.write_text(yaml.safe_dump([
        {"name": "Ivan", "channel": "form", "phone": "+79161234567", "message": "нужен опт"},
        {"name": "Olga", "channel": "call", "phone": "+74951234567"},
        {"name": "Petr", "channel": "mail", "email": "p@example.com", "owner": "clara"},
    ], allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("HUB_CONFIG", str(config_path))
    monkeypatch.setenv("DATABASE_URL", database_url)
    context.install(None)
    result = CliRunner().invoke(main, ["route", "simulate", str(samples)])
    context.install(None)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "1. form Ivan -> anna: rule 'wholesale' -> weighted round-robin over [anna×1, boris×3] (turn 1)",
        "2. call Olga -> anna: no routing rule matched -> round-robin over [anna, boris, clara] (turn 1)",
        "3. mail Petr -> clara: known client -> back to their owner clara",
    ]
