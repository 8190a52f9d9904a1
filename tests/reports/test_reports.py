"""Reports on a seeded store with known answers: attribution models, medians and the 90th
percentile of first response, SLA breaches, and period boundaries in the team's time zone
(Europe/Moscow, UTC+3)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, insert

from hub.pipeline.route import sync_team
from hub.reports.queries import Groups, median, percentile
from hub.store.models import Lead, LeadHistory, Task

from tests.helpers import numbering_after_seeded_leads

BASE = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
YANDEX, GOOGLE = {"utm_source": "yandex", "utm_campaign": "brand"}, {"utm_source": "google", "gclid": "abc"}
DIRECT = {"landing_page": "https://site.example/"}
NOVEMBER = "from=2026-11-01&to=2026-11-30"
# number: (assignee, channel, first touch, last touch, status, seconds to first response, escalations)
SEEDS = {
    1: ("anna", "form", YANDEX, GOOGLE, "converted", 60, 0),
    2: ("anna", "form", YANDEX, DIRECT, "in_progress", 120, 0),
    3: ("anna", "call", {}, {}, "new", 600, 2),
    4: ("boris", "form", GOOGLE, GOOGLE, "converted", 30, 0),
    5: ("boris", "mail", {"mailbox": "sales"}, {"mailbox": "sales"}, "new", None, 1),
    6: (None, "form", YANDEX, YANDEX, "new", None, 0),
}


@pytest.fixture
def seeded(hub, settle):
    hub.clock = lambda: datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with hub.db.write() as session:
        sync_team(session, hub.config["team"])
        for number, (who, channel, first, last, status, response, escalations) in SEEDS.items():
            created = BASE + timedelta(hours=number)
            session.add(Lead(id=number, assignee_id=who, channel=channel, source=first, last_source=last,
                             status=status, created_at=created,
                             handled_at=created + timedelta(seconds=response) if response else None))
            session.add_all(LeadHistory(lead_id=number, actor="hub", action="escalated", at=created)
                            for _ in range(escalations))
        # the last minute of 30 November and the first of 1 December, Moscow time
        session.add(Lead(id=7, assignee_id="anna", channel="form", source=YANDEX, last_source=YANDEX,
                         created_at=datetime(2026, 11, 30, 20, 59, 59, tzinfo=UTC)))
        session.add(Lead(id=8, assignee_id="boris", channel="call", source={}, last_source={},
                         created_at=datetime(2026, 11, 30, 21, 0, tzinfo=UTC)))
        session.add(Task(lead_id=5, kind="callback", title="call back", assignee_id="boris", status="done"))
        session.add(Task(lead_id=5, kind="callback", title="call back", assignee_id="boris", status="open"))
        numbering_after_seeded_leads(session)
    settle(hub)
    return hub


def by_key(response) -> dict:
    assert response.status_code == 200, response.json
    return {row["key"]: row for row in response.json["rows"]}


def test_channels_by_source_under_each_attribution_model(api, seeded):
    first = by_key(api.get(f"/api/reports/channels?by=utm_source&model=first&{NOVEMBER}"))
    assert {key: row["leads"] for key, row in first.items()} == {"yandex": 4, "google": 1, None: 2}
    assert first["yandex"] | {"key": "yandex"} == {"key": "yandex", "leads": 4, "converted": 1, "conversion": 0.25,
                                                   "first_response_median": 90.0}
    last = by_key(api.get(f"/api/reports/channels?by=utm_source&model=last&{NOVEMBER}"))
    assert {key: row["leads"] for key, row in last.items()} == {"google": 2, "yandex": 2, None: 3}
    assert last["google"]["first_response_median"] == 45.0 and last["yandex"]["first_response_median"] is None
    default = api.get(f"/api/reports/channels?by=utm_source&{NOVEMBER}")
    assert default.json["model"] == "last_non_direct"
    assert {key: row["leads"] for key, row in by_key(default).items()} == {"yandex": 3, "google": 2, None: 2}


def test_channels_by_other_dimensions_and_filters(api, seeded):
    channel = by_key(api.get(f"/api/reports/channels?{NOVEMBER}"))
    assert {key: row["leads"] for key, row in channel.items()} == {"form": 5, "call": 1, "mail": 1}
    clicks = by_key(api.get(f"/api/reports/channels?by=click_id&{NOVEMBER}"))
    assert (clicks["yes"]["leads"], clicks["no"]["leads"]) == (2, 5)
    forms = by_key(api.get(f"/api/reports/channels?by=utm_campaign&channel=form&{NOVEMBER}"))
    assert {key: row["leads"] for key, row in forms.items()} == {"brand": 3, None: 2}


def test_managers_first_response_median_p90_and_escalations(api, seeded):
    rows = by_key(api.get(f"/api/reports/managers?{NOVEMBER}"))
    assert rows["anna"] == {"key": "anna", "leads": 4, "converted": 1, "conversion": 0.25,
                            "first_response_median": 120.0, "first_response_p90": 600.0,
                            "sla_breaches": 1, "escalations": 2, "callbacks": 0}
    assert rows["boris"] == {"key": "boris", "leads": 2, "converted": 1, "conversion": 0.5,
                             "first_response_median": 30.0, "first_response_p90": 30.0,
                             "sla_breaches": 1, "escalations": 1, "callbacks": 1}


def test_no_report_passes_the_periods_leads_as_parameters(api, hub):
    """A database takes a bounded number of parameters in a statement (SQLite 32,766 or 250,000
    as built, PostgreSQL 65,535), so a report's statements may not grow with the period."""
    count = 500
    with hub.db.write() as session:
        sync_team(session, hub.config["team"])
        rows = [{"id": n, "assignee_id": "anna", "channel": "call", "status": "new", "source": {}, "last_source": {},
                 "created_at": BASE} for n in range(1, count + 1)]
        session.execute(insert(Lead), rows)
        session.add(LeadHistory(lead_id=count, actor="hub", action="escalated", at=BASE))
        session.add(Task(lead_id=count, kind="callback", title="call back", assignee_id="anna", status="done"))
    sizes = []

    def count_parameters(conn, cursor, statement, parameters, context, executemany):
        sizes.append(len(parameters))

    event.listen(hub.db.engine, "before_cursor_execute", count_parameters)
    try:
        [anna] = api.get(f"/api/reports/managers?{NOVEMBER}").json["rows"]
        for report in ("channels", "timeseries"):
            assert api.get(f"/api/reports/{report}?{NOVEMBER}").status_code == 200
    finally:
        event.remove(hub.db.engine, "before_cursor_execute", count_parameters)
    assert (anna["leads"], anna["escalations"], anna["sla_breaches"], anna["callbacks"]) == (count, 1, 1, 1)
    assert sizes and max(sizes) < 20


def test_periods_are_whole_days_in_the_team_time_zone(api, seeded):
    series = api.get("/api/reports/timeseries?from=2026-11-30&to=2026-12-01").json
    assert series["days"] == ["2026-11-30", "2026-12-01"]
    assert series["series"] == {"call": [0, 1], "form": [1, 0]}
    december = by_key(api.get("/api/reports/channels?from=2026-12-01&to=2026-12-01"))
    assert list(december) == ["call"]
    default = api.get("/api/reports/timeseries").json  # the last 30 days up to today, 1 December in Moscow
    assert (default["from"], default["to"], len(default["days"])) == ("2026-11-02", "2026-12-01", 30)
    assert sum(map(sum, default["series"].values())) == 8


@pytest.mark.parametrize(("query", "field"), [
    ("model=best", "model"), ("from=2026-13-01", "from"), ("from=2026-12-02&to=2026-12-01", "from"),
    ("by=weather", "by"), ("colour=red", "colour")])
def test_a_bad_parameter_is_a_400_naming_it(api, seeded, query, field):
    response = api.get(f"/api/reports/channels?{query}")
    assert response.status_code == 400 and field in response.json["fields"]


def test_median_and_nearest_rank_percentile():
    assert median([4, 1, 3, 2]) == 2.5 and median([]) is None
    assert percentile(list(range(1, 11)), 0.9) == 9 and percentile([7], 0.9) == 7 and percentile([], 0.9) is None
    assert percentile(list(range(1, 12)), 0.9) == 10  # ceil(9.9) = 10th of 11


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.one_of(st.none(), st.integers(0, 10 ** 6).map(float))),
                max_size=60))
def test_grouped_medians_and_percentiles_equal_the_reference(rows):
    """``Groups`` (NumPy, every group at once) agrees with ``median`` and ``percentile``, value
    for value, with no values (NaN) left out."""
    codes = np.array([code for code, _ in rows], np.int32)
    values = np.array([np.nan if value is None else value for _, value in rows], np.float64)
    groups = Groups(codes, 5)
    middle, p90 = groups.median(values), groups.percentile(values, 90)
    for code in range(5):
        mine = [value for group, value in rows if group == code and value is not None]
        expected = (median(mine), percentile(mine, 0.9))
        found = tuple(None if np.isnan(value) else value for value in (middle[code], p90[code]))
        assert found == expected
