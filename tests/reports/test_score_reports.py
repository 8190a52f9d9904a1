"""Reports by class: leads and conversion per class, and the value lost from maximum,
value × (1 − probability) over open leads that have both, with the biggest deals about to slip."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.store.models import Lead

from tests.pipeline.test_score import SCORING

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
# (status, class, value, probability)
LEADS = [("new", "A", 100000.0, 0.6), ("in_progress", "A", 300000.0, 0.5), ("converted", "A", 50000.0, 0.9),
         ("new", "B", 80000.0, None), ("junk", "B", 20000.0, 0.1), ("new", "C", None, 0.2), ("new", None, None, None)]


@pytest.fixture
def config_document(config_document):
    config_document["scoring"] = SCORING
    return config_document


def seed_scored(hub) -> None:
    with hub.db.write() as session:
        session.add_all(Lead(status=status, channel="form", name=f"Client {n}", phone=f"+7916000000{n}",
                             source={"utm_source": "yandex" if n % 2 else "google"}, created_at=NOW,
                             score_class=klass, score_value=value, score_probability=probability,
                             score_details={} if klass else None)
                        for n, (status, klass, value, probability) in enumerate(LEADS, start=1))


@pytest.fixture
def scored(hub, settle):
    hub.clock = lambda: NOW
    seed_scored(hub)
    settle(hub)
    return hub


def test_scores_by_class_and_the_value_lost(api, scored):
    answer = api.get("/api/reports/scores?from=2026-12-01&to=2026-12-01").get_json()
    rows = {row["key"]: row for row in answer["rows"]}
    assert list(rows) == ["A", "B", "C", None]
    a = rows["A"]
    assert (a["leads"], a["converted"], a["open"]) == (3, 1, 2)
    assert a["value"] == 450000.0
    assert a["expected"] == 100000 * 0.6 + 300000 * 0.5
    assert a["value_lost"] == 100000 * 0.4 + 300000 * 0.5  # the converted one is not open
    assert (rows["B"]["value_lost"], rows["B"]["unestimated"]) == (0, 1)  # no probability yet; the junk one is closed
    assert rows["C"]["unestimated"] == 1 and rows[None]["unestimated"] == 1
    assert [(lead["number"], lead["value_lost"]) for lead in answer["at_risk"]] == [(2, 150000.0), (1, 40000.0)]


def test_channels_by_class_and_a_class_filter(api, scored):
    rows = api.get("/api/reports/channels?by=class&from=2026-12-01&to=2026-12-01").get_json()["rows"]
    assert {row["key"]: row["leads"] for row in rows} == {"A": 3, "B": 2, "C": 1, None: 1}
    only_a = api.get("/api/reports/managers?class=A&from=2026-12-01&to=2026-12-01").get_json()
    assert only_a["filters"] == {"class": "A"}
    scores = api.get("/api/reports/scores?class=B&from=2026-12-01&to=2026-12-01").get_json()
    assert [row["key"] for row in scores["rows"]] == ["B"]


@pytest.mark.parametrize("query,field", [("to=0001-01-01", "to"), ("from=9999-12-31", "from")])
def test_dates_at_the_ends_of_the_calendar_are_a_400(api, query, field):
    response = api.get(f"/api/reports/managers?{query}")
    assert response.status_code == 400 and field in response.get_json()["fields"]
