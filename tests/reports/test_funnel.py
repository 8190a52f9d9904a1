"""The funnel on a seeded store with known answers: leads that reached each stage, conversion
between stages, median time in stage, won and lost, filters on the attributed touch, and period
boundaries in the team's time zone (Europe/Moscow, UTC+3)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.pipeline.route import sync_team
from hub.store.models import Lead, StageVisit

from tests.helpers import numbering_after_seeded_leads

BASE = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
NOVEMBER = "from=2026-11-01&to=2026-11-30"
PIPELINES = {"sales": {"stages": [{"name": "introduction", "limit": "2d"}, {"name": "offer"}, {"name": "invoice"}]},
             "service": {"stages": [{"name": "diagnosis"}, {"name": "repair"}]}}
HOUR = 3600
YANDEX, GOOGLE = {"utm_source": "yandex"}, {"utm_source": "google"}
# number: (status, first touch, [(stage, hours there, outcome) ...]); the last stay without
# an outcome is where the lead is now
SEEDS = {
    1: ("converted", YANDEX, [("introduction", 1, "moved"), ("offer", 10, "moved"), ("invoice", 5, "won")]),
    2: ("in_progress", YANDEX, [("introduction", 3, "moved"), ("offer", None, None)]),
    3: ("junk", GOOGLE, [("introduction", 2, "lost")]),
    4: ("in_progress", GOOGLE, [("introduction", 4, "moved"), ("invoice", None, None)]),  # skipped the offer
    5: ("in_progress", YANDEX, [("introduction", None, None)]),
    6: ("new", YANDEX, []),
}
LAST_TOUCH = {2: {"utm_source": "google"}, 5: {"landing_page": "https://site.example/"}}  # 5's is direct


@pytest.fixture
def config_document(config_document):
    config_document["pipelines"] = PIPELINES
    config_document["default_pipeline"] = "sales"
    return config_document


def seed_lead(session, number: int, created: datetime, status: str, source: dict, stays: list) -> None:
    current = next((stage for stage, _hours, outcome in stays if outcome is None), None)
    session.add(Lead(id=number, channel="form", source=source, last_source=LAST_TOUCH.get(number, source),
                     status=status,
                     created_at=created, pipeline="sales" if stays else None, stage=current))
    session.flush()
    entered = created
    for stage, hours, outcome in stays:
        left = entered + timedelta(hours=hours) if hours is not None else None
        session.add(StageVisit(lead_id=number, pipeline="sales", stage=stage, entered_at=entered, left_at=left,
                               seconds=hours * HOUR if hours is not None else None, outcome=outcome))
        entered = left or entered


@pytest.fixture
def seeded(hub, settle):
    hub.clock = lambda: datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with hub.db.write() as session:
        sync_team(session, hub.config["team"])
        for number, (status, source, stays) in SEEDS.items():
            seed_lead(session, number, BASE + timedelta(hours=number), status, source, stays)
        # the last second of 30 November and the first of 1 December, Moscow time
        seed_lead(session, 7, datetime(2026, 11, 30, 20, 59, 59, tzinfo=UTC), "in_progress", YANDEX,
                  [("introduction", None, None)])
        seed_lead(session, 8, datetime(2026, 11, 30, 21, 0, tzinfo=UTC), "in_progress", YANDEX,
                  [("introduction", 6, "moved"), ("offer", None, None)])
        numbering_after_seeded_leads(session)
    settle(hub)
    return hub


def funnel(api, query: str) -> dict:
    response = api.get(f"/api/reports/funnel?{query}")
    assert response.status_code == 200, response.json
    return {entry["pipeline"]: entry for entry in response.json["pipelines"]}


def test_funnel_counts_conversions_and_median_time_in_stage(api, seeded):
    sales = funnel(api, NOVEMBER)["sales"]
    stages = {row["stage"]: row for row in sales["stages"]}
    assert [(row["stage"], row["entered"], row["reached"]) for row in sales["stages"]] == [
        ("introduction", 6, 6), ("offer", 2, 3), ("invoice", 2, 2)]  # lead 4 skipped the offer: it reached it
    assert [row["conversion"] for row in sales["stages"]] == [0.5, 0.6667, None]
    assert [row["at_stage"] for row in sales["stages"]] == [2, 1, 1]
    assert stages["introduction"]["time_in_stage_median"] == 2.5 * HOUR  # 1, 2, 3, 4 hours: the two middle ones
    assert stages["offer"]["time_in_stage_median"] == 10 * HOUR  # one finished stay
    assert (sales["leads"], sales["won"], sales["lost"], sales["won_rate"]) == (6, 1, 1, 0.1667)
    assert funnel(api, NOVEMBER)["service"] == {
        "pipeline": "service", "leads": 0, "won": 0, "lost": 0, "won_rate": 0.0, "stages": [
            {"stage": name, "entered": 0, "reached": 0, "conversion": conversion, "at_stage": 0,
             "time_in_stage_median": None} for name, conversion in (("diagnosis", 0.0), ("repair", None))]}


def test_period_boundaries_are_whole_days_in_the_teams_time_zone(api, seeded):
    last_day = funnel(api, "from=2026-11-30&to=2026-11-30")["sales"]
    assert [row["reached"] for row in last_day["stages"]] == [1, 0, 0]  # lead 7, at 23:59:59 Moscow time
    first_day = funnel(api, "from=2026-12-01&to=2026-12-01")["sales"]
    assert [row["reached"] for row in first_day["stages"]] == [1, 1, 0]  # lead 8, at 00:00 Moscow time
    assert first_day["stages"][0]["time_in_stage_median"] == 6 * HOUR


def test_filters_match_the_attributed_touch(api, seeded):
    google = funnel(api, f"{NOVEMBER}&utm_source=google")["sales"]  # last non-direct: lead 2's last touch
    assert [row["reached"] for row in google["stages"]] == [3, 2, 1]
    assert (google["leads"], google["lost"]) == (3, 1)
    first = funnel(api, f"{NOVEMBER}&utm_source=google&model=first")["sales"]
    assert [row["reached"] for row in first["stages"]] == [2, 1, 1]
    yandex = funnel(api, f"{NOVEMBER}&utm_source=yandex")["sales"]  # 5's direct last touch falls back to its first
    last = funnel(api, f"{NOVEMBER}&utm_source=yandex&model=last")["sales"]
    assert (yandex["leads"], last["leads"]) == (3, 2)  # 1, 5, 7; 1, 7
    stuck = funnel(api, f"{NOVEMBER}&status=in_progress")["sales"]
    assert [row["at_stage"] for row in stuck["stages"]] == [2, 1, 1]  # leads 5 and 7; 2; 4


def test_bad_parameters_are_400_naming_them(api, seeded):
    response = api.get("/api/reports/funnel?from=yesterday")
    assert response.status_code == 400 and "from" in response.json["fields"]
    assert api.get("/api/reports/funnel?stage=offer").status_code == 400


def test_a_lead_back_at_a_stage_counts_once_and_both_stays_count_for_the_median(api, hub, settle):
    hub.clock = lambda: datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with hub.db.write() as session:
        sync_team(session, hub.config["team"])
        seed_lead(session, 20, datetime(2026, 10, 5, 9, 0, tzinfo=UTC), "in_progress", YANDEX,
                  [("introduction", 1, "moved"), ("offer", 2, "moved"), ("introduction", 3, "moved"),
                   ("offer", None, None)])
        numbering_after_seeded_leads(session)
    settle(hub)
    sales = funnel(api, "from=2026-10-01&to=2026-10-31")["sales"]
    stages = {row["stage"]: row for row in sales["stages"]}
    assert {name: (row["entered"], row["reached"]) for name, row in stages.items()} == \
        {"introduction": (1, 1), "offer": (1, 1), "invoice": (0, 0)}
    assert stages["introduction"]["time_in_stage_median"] == 2 * HOUR
    assert stages["offer"]["at_stage"] == 1 and sales["leads"] == 1


def test_a_funnel_nobody_entered_is_all_zeros(api, hub, settle):
    hub.clock = lambda: datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with hub.db.write() as session:
        sync_team(session, hub.config["team"])
        seed_lead(session, 30, datetime(2026, 9, 5, 9, 0, tzinfo=UTC), "new", YANDEX, [])
        numbering_after_seeded_leads(session)
    settle(hub)
    pipelines = funnel(api, "from=2026-09-01&to=2026-09-30")
    assert [(entry["leads"], [row["entered"] for row in entry["stages"]]) for entry in pipelines.values()] == \
        [(0, [0, 0, 0]), (0, [0, 0])]


def test_pipeline_picks_one_configured_pipeline(api, seeded):
    every = api.get(f"/api/reports/funnel?{NOVEMBER}").json
    service = api.get(f"/api/reports/funnel?{NOVEMBER}&pipeline=service").json
    assert [entry["pipeline"] for entry in every["pipelines"]] == ["sales", "service"]
    assert service["pipelines"] == [every["pipelines"][1]]
    sales = api.get(f"/api/reports/funnel?{NOVEMBER}&pipeline=sales&utm_source=google").json["pipelines"]
    assert sales == [funnel(api, f"{NOVEMBER}&utm_source=google")["sales"]]


def test_an_unknown_pipeline_is_a_400_naming_it(api, seeded):
    response = api.get(f"/api/reports/funnel?{NOVEMBER}&pipeline=sale")
    assert response.status_code == 400
    assert response.json["fields"] == {"pipeline": "no pipeline is called 'sale'; configured: sales, service"}
    assert api.get("/api/reports/channels?pipeline=sales").status_code == 400  # the funnel's alone


def test_the_openapi_document_declares_the_funnels_pipeline(api):
    document = api.get("/api/openapi.json").json
    names = [p["name"] for p in document["paths"]["/api/reports/funnel"]["get"]["parameters"]]
    assert "pipeline" in names and "pipeline" not in [
        p["name"] for p in document["paths"]["/api/reports/channels"]["get"]["parameters"]]
