"""``lead_facts`` follows ``leads`` through the database's triggers, whatever writes the lead:
the intake pipeline, the API, bulk statements, the migration filling it for stored leads. Each
check compares the facts row with what the reports' reference semantics (``attributed``,
``value_of``, ``response_seconds`` in ``hub.reports.queries``) make of the lead itself."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import case, delete, insert, select, update

from hub.pipeline.route import sync_team
from hub.reports.queries import FACT_KEYS, MODELS, attributed, json_touch_value, response_seconds, value_of
from hub.store.db import make_engine
from hub.store.migrate import alembic_config
from hub.store.models import Lead, LeadFact, StageVisit

BASE = datetime(2026, 11, 10, 9, 0, 0, 123456, tzinfo=UTC)
TOUCHES = [
    ({"utm_source": "yandex", "utm_campaign": "brand", "form": "landing"}, {}),
    ({"utm_source": "yandex"}, {"utm_source": "google", "gclid": "abc", "utm_term": "crm"}),
    ({"utm_source": "yandex", "yclid": "42"}, {"landing_page": "https://site.example/"}),  # the last is direct
    ({}, None),
    ({"mailbox": "sales"}, {"called_number": "+74951234567", "utm_content": ""}),
]


def fact(touch: str, key: str):
    return getattr(LeadFact, f"{touch}_{key}")


def touch_value(key: str, model: str):
    """A field of the touch the model attributes a lead to, as SQL over ``lead_facts`` (the
    reference is ``attributed`` and ``value_of``): ``last_direct`` picks the first touch's field for the
    last non-direct model. The fields reports never group by come from the lead's JSON."""
    if key not in FACT_KEYS:
        return json_touch_value(key, model)
    first, last = (case((fact(touch, "click"), "yes"), else_="no") if key == "click_id" else fact(touch, key)
                   for touch in ("first", "last"))
    if model == "first":
        return first
    if model == "last":
        return last
    return case((LeadFact.last_direct, first), else_=last)


def expected(lead: Lead) -> dict:
    """(model, key) -> the value the reports attribute to the lead, by the reference semantics."""
    values = {(model, key): value_of(lead, attributed(lead, model), key) for model in MODELS for key in FACT_KEYS}
    return values | {"channel": lead.channel, "status": lead.status, "assignee": lead.assignee_id,
                     "response": response_seconds(lead)}


def stored(session, lead_id: int) -> dict:
    columns = [touch_value(key, model).label(f"{model}:{key}") for model in MODELS for key in FACT_KEYS]
    row = session.execute(select(LeadFact.channel, LeadFact.status, LeadFact.assignee_id,
                                 LeadFact.response_seconds, *columns).where(LeadFact.lead_id == lead_id)).one()
    values = {tuple(name.split(":")): row._mapping[name] for name in row._mapping if ":" in name}
    return values | {"channel": row.channel, "status": row.status, "assignee": row.assignee_id,
                     "response": row.response_seconds}


def assert_facts_follow(hub) -> int:
    """Every lead's facts match the lead; returns how many were checked."""
    with hub.db.read() as session:
        leads = session.scalars(select(Lead).order_by(Lead.id)).all()
        assert session.scalar(select(LeadFact.lead_id).where(LeadFact.lead_id.not_in([lead.id for lead in leads]))) \
            is None
        for lead in leads:
            assert stored(session, lead.id) == expected(lead), lead.id
    return len(leads)


@pytest.fixture
def team(hub):
    with hub.db.write() as session:
        sync_team(session, hub.config["team"])
    return hub


def add_leads(hub) -> None:
    with hub.db.write() as session:
        for number, (first, last) in enumerate(TOUCHES, start=1):
            session.add(Lead(id=number, channel="form", source=first, last_source=last, status="new",
                             assignee_id=("anna", "boris", None)[number % 3],
                             created_at=BASE + timedelta(hours=number)))


def test_a_new_lead_has_its_facts_under_every_model(team):
    add_leads(team)
    assert assert_facts_follow(team) == len(TOUCHES)
    with team.db.read() as session:
        third = stored(session, 3)
    assert (third[("last", "utm_source")], third[("last_non_direct", "utm_source")]) == (None, "yandex")
    assert (third[("first", "click_id")], third[("last", "click_id")]) == ("yes", "no")


def test_updates_of_touch_status_assignee_and_response_follow(team):
    add_leads(team)
    with team.db.write() as session:
        lead = session.get(Lead, 1)
        lead.last_source = {"utm_source": "google", "utm_medium": "cpc"}  # a new touch
        lead.status = "converted"
        lead.assignee_id = "boris"
        lead.handled_at = lead.created_at + timedelta(seconds=90, microseconds=500)
        session.get(Lead, 2).last_source = {}  # back to no last touch: the first stands in
    assert assert_facts_follow(team) == len(TOUCHES)
    with team.db.read() as session:
        first = stored(session, 1)
    assert (first[("last_non_direct", "utm_source")], first["status"], first["assignee"]) == (
        "google", "converted", "boris")
    assert first["response"] == 90.0005


def test_bulk_statements_and_deletes_follow(team):
    with team.db.write() as session:
        session.execute(insert(Lead), [{"id": n, "channel": "call", "status": "new", "source": {"utm_source": "ya"},
                                        "last_source": {}, "created_at": BASE} for n in range(1, 51)])
        session.execute(update(Lead).where(Lead.id <= 10).values(status="junk", assignee_id="anna",
                                                                 last_source={"yclid": "7"}))
        session.execute(delete(Lead).where(Lead.id > 40))
    assert assert_facts_follow(team) == 40
    with team.db.read() as session:
        assert session.scalar(select(LeadFact.last_click).where(LeadFact.lead_id == 10)) is True


def test_intake_and_manager_actions_through_the_app(team, client, api, run_jobs):
    fields = {"name": "Ivan", "phone": "+79161234567", "utm_source": "yandex", "utm_campaign": "brand"}
    assert client.post("/hooks/forms/landing", data=fields).status_code < 300
    run_jobs()
    assert client.post("/hooks/forms/landing", data=fields | {"utm_source": "google", "gclid": "x1"}).status_code < 300
    run_jobs()
    with team.db.read() as session:
        number = session.scalar(select(Lead.id))
        assert session.get(Lead, number).last_source.get("gclid") == "x1"  # the second post was a touch of it
    assert assert_facts_follow(team) == 1
    assert api.patch(f"/api/leads/{number}", json={"status": "in_progress", "assignee": "boris"}).status_code == 200
    assert assert_facts_follow(team) == 1
    with team.db.read() as session:
        facts = stored(session, number)
    assert (facts["status"], facts["assignee"], facts[("last_non_direct", "utm_source")]) == (
        "in_progress", "boris", "google")


def test_a_stay_carries_its_leads_creation_time(team):
    add_leads(team)
    with team.db.write() as session:
        session.add(StageVisit(lead_id=2, pipeline="sales", stage="offer", entered_at=BASE))
    with team.db.read() as session:
        assert session.scalar(select(StageVisit.lead_created_at)) == BASE + timedelta(hours=2)


def test_the_migration_fills_the_facts_of_stored_leads(team, database_url):
    engine = make_engine(database_url)
    config = alembic_config(database_url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0012")
        add_leads(team)
        with team.db.write() as session:  # no lead_created_at yet: name the columns of 0012
            session.execute(insert(StageVisit).values(lead_id=4, pipeline="sales", stage="offer", entered_at=BASE))
    finally:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        engine.dispose()
    assert assert_facts_follow(team) == len(TOUCHES)
    with team.db.read() as session:
        assert session.scalar(select(StageVisit.lead_created_at)) == BASE + timedelta(hours=4)
