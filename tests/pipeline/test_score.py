"""Lead scoring: rule points, classes, value, the learned probability (checked against the
naive Bayes formula worked by hand from seeded counts), the fallback while history is thin,
and the explanation stored with the score."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from hub.config import load_config
from hub.pipeline import process_pending, score
from hub.pipeline.score import Scorer, explain, parse_amount
from hub.pipeline.score_model import Model, features, train
from hub.store.models import Lead

from tests.helpers import insert_pending_forms

SCORING = {
    "rules": [
        {"when": {"utm_source": ["yandex"]}, "points": 20},
        {"when": {"business_hours": True}, "points": 10},
        {"name": "no e-mail", "when": {"has_email": False}, "points": -15},
        {"name": "budget given", "when": {"fields": {"budget": True}}, "points": 10},
    ],
    "classes": {"A": {"points": 30}, "B": {"points": 10}},
    "amount": {"field": "budget", "defaults": [{"when": {"utm_source": ["yandex"]}, "amount": 120000}],
              "default": 50000},
    "model": {"fields": ["utm_term", "has_email"], "min_closed": 20},
}

# The seeded history: (status, utm_term, e-mail) × how many.
# converted 8: crm 6 (5 with e-mail), erp 2 (with e-mail); lost 12: crm 4 (2 with e-mail),
# erp 8 (3 with e-mail).
HISTORY = [("converted", "crm", True, 5), ("converted", "crm", False, 1), ("converted", "erp", True, 2),
           ("junk", "crm", True, 2), ("archived", "crm", False, 2), ("junk", "erp", True, 3),
           ("archived", "erp", False, 5)]


@pytest.fixture
def config_document(config_document):
    config_document["scoring"] = SCORING
    return config_document


def seed_history(hub, rows=HISTORY) -> None:
    created = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
    with hub.db.write() as session:
        for index, (status, term, with_email, times) in enumerate(rows):
            session.add_all(Lead(status=status, channel="form", phone=f"+7916{index:03d}{n:04d}",
                                 email=f"c{index}-{n}@example.com" if with_email else None,
                                 source={"utm_term": term}, created_at=created) for n in range(times))


def facts(utm_source=None, utm_term=None, email=True, business_hours=True, **fields) -> dict:
    return {"utm_source": utm_source, "utm_term": utm_term, "channel": "form", "has_email": email,
            "has_phone": True, "business_hours": business_hours, "known_client": False, "message": "",
            "fields": fields}


def hand_probability(term_won, term_lost, email_won, email_lost, won=8, lost=12, k=3) -> float:
    """P(v|won) = (w+1)/(won+k), P(v|lost) = (l+1)/(lost+k), prior odds (won+1)/(lost+1)."""
    odds = (won + 1) / (lost + 1)
    odds *= ((term_won + 1) / (won + k)) / ((term_lost + 1) / (lost + k))
    odds *= ((email_won + 1) / (won + k)) / ((email_lost + 1) / (lost + k))
    return odds / (1 + odds)


def test_points_class_and_value_from_the_rules():
    scorer = Scorer(load_config(document={"scoring": {**SCORING, "model": None}})["scoring"], None)
    result = scorer.score(facts(utm_source="yandex", budget="250 000 ₽"))
    assert (result.klass, result.value, result.probability) == ("A", 250000.0, None)
    assert result.details["points"] == 40
    assert explain(result.details) == ("+20 utm_source=yandex, +10 business hours, +10 budget given = 40 points "
                                      "(class A); value 250,000 (form field budget)")
    plain = scorer.score(facts(email=False, business_hours=False))
    assert (plain.klass, plain.value) == ("C", 50000.0)
    assert explain(plain.details) == "−15 no e-mail = −15 points (class C); value 50,000 (default)"
    per_source = scorer.score(facts(utm_source="yandex", budget="ask me"))
    assert (per_source.klass, per_source.value) == ("A", 120000.0)  # "ask me" is no amount, but filled in
    assert per_source.details["value_from"] == "default for utm_source=yandex"


@pytest.mark.parametrize("text,amount", [("150000", 150000.0), ("150 000 ₽", 150000.0), ("99.90", 99.9),
                                         ("1 200,50 руб.", 1200.5), ("$300", 300.0), ("ask me", None),
                                         ("", None), (None, None), ("1,5 млн", None)])
def test_amounts_from_a_form_field(text, amount):
    assert parse_amount(text) == amount


def test_naive_bayes_matches_the_formula_worked_by_hand():
    rows = [(status, {"utm_term": term, "has_email": "yes" if email else "no"})
            for status, term, email, times in HISTORY for _ in range(times)]
    model = train(rows, ["utm_term", "has_email"])
    assert (model.closed, model.won, model.lost) == (20, 8, 12)
    assert model.tables["utm_term"] == {"crm": [6, 4], "erp": [2, 8]}
    probability, factors = model.predict({"utm_term": "crm", "has_email": "yes"})
    assert probability == pytest.approx(hand_probability(6, 4, 7, 5))
    assert probability == pytest.approx(3780 / 5353)  # 9/13 × 21/11 × 20/11 as odds
    assert [(f.field, f.value) for f in factors] == [("utm_term", "crm"), ("has_email", "yes")]
    assert factors[0].ratio == pytest.approx(21 / 11)
    low, _ = model.predict({"utm_term": "erp", "has_email": "no"})
    assert low == pytest.approx(hand_probability(2, 8, 1, 7))
    unseen, factors = model.predict({"utm_term": "seo", "has_email": "yes"})  # a value never seen: k smooths it
    assert unseen == pytest.approx(hand_probability(0, 0, 7, 5))
    assert [f.value for f in factors] == ["yes", "seo"]


def test_a_missing_value_is_a_value_of_its_own():
    model = train([("converted", {"utm_term": "(none)"}), ("junk", {"utm_term": "crm"})], ["utm_term"])
    assert features({"utm_term": None, "fields": {}}, ["utm_term"]) == {"utm_term": "(none)"}
    assert model.predict({"utm_term": "(none)"})[0] > model.predict({"utm_term": "crm"})[0]


def test_form_fields_can_be_model_fields():
    assert features({"fields": {"budget": " 100 "}}, ["fields.budget", "fields.company"]) == {
        "fields.budget": "100", "fields.company": "(none)"}


def test_trained_probability_scores_new_leads_with_their_factors(hub):
    seed_history(hub)
    model = score.train(hub)
    assert (model.closed, model.won) == (20, 8)
    insert_pending_forms(hub, ["+79161234567"])
    with hub.db.write() as session:  # the form's utm_term and e-mail, as a tracked form would send them
        from hub.store.models import RawEvent
        raw = session.scalars(select(RawEvent)).one()
        raw.body = b"name=Ivan&phone=%2B79161234567&email=ivan%40example.com&utm_source=yandex&utm_term=crm"
    process_pending(hub)
    with hub.db.read() as session:
        lead = session.scalars(select(Lead).where(Lead.status == "new")).one()
    assert lead.score_probability == pytest.approx(round(3780 / 5353, 4))
    assert lead.score_class == "A"  # 20 + 10 points
    assert lead.score_details["probability"]["closed"] == 20
    assert explain(lead.score_details) == (
        "+20 utm_source=yandex, +10 business hours = 30 points (class A); value 120,000 "
        "(default for utm_source=yandex); probability 71% from 20 closed leads: "
        "utm_term=crm ×1.9, has_email=yes ×1.8")


def test_thin_history_falls_back_to_the_rules(hub):
    hub.config["scoring"]["model"]["min_closed"] = 21
    seed_history(hub)
    model = score.train(hub)
    assert model.closed == 20
    insert_pending_forms(hub, ["+79161234567"])
    process_pending(hub)
    with hub.db.read() as session:
        lead = session.scalars(select(Lead).where(Lead.status == "new")).one()
    assert (lead.score_class, lead.score_probability) == ("C", None)  # +10 business hours −15 no e-mail
    assert explain(lead.score_details) == (
        "+10 business hours, −15 no e-mail = −5 points (class C); value 50,000 (default); "
        "probability not learned yet (20 closed leads, 21 needed): class from points")


def test_probability_thresholds_replace_points_once_learned(hub):
    hub.config["scoring"]["classes"] = {"A": {"points": 30, "probability": 0.8},
                                        "B": {"points": 10, "probability": 0.5}}
    seed_history(hub)
    score.train(hub)
    with hub.db.read() as session:
        scorer = Scorer.load(session, hub.config)
    result = scorer.score(facts(utm_source="yandex", utm_term="crm"))  # 30 points, but 71%
    assert (result.klass, result.details["points_class"], result.details["class_from"]) == ("B", "A", "probability")
    assert explain(result.details).endswith("; class B by probability")


def test_no_scoring_section_means_no_scores(config_document, request):
    del config_document["scoring"]
    hub = request.getfixturevalue("hub")
    insert_pending_forms(hub, ["+79161234567"])
    process_pending(hub)
    with hub.db.read() as session:
        lead = session.scalars(select(Lead)).one()
    assert (lead.score_class, lead.score_probability, lead.score_value, lead.score_details) == (None,) * 4


def test_model_for_fields_it_was_not_trained_on_treats_them_as_unseen():
    model = Model(("utm_term",), 2, 1, {"utm_term": {"crm": [1, 0]}})
    assert model.predict({})[0] == pytest.approx(model.predict({"utm_term": "other"})[0])
