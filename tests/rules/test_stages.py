"""Pipeline stages: entering, limits escalating on a fixed clock, moving on, outcomes, the API."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hub.config import ConfigError, load_config
from hub.rules import stages
from hub.store.models import Lead, Notification, StageVisit

from tests.helpers import Clock

PIPELINES = {
    "sales": {
        "when": {"form": ["landing"]},
        "stages": [{"name": "introduction", "limit": "2d", "outcomes": {"not_interested": "lost"}},
                   {"name": "offer", "limit": "3d", "outcomes": {"accepted": "next", "declined": "lost"}},
                   {"name": "invoice"}, {"name": "payment", "outcomes": {"paid": "shipment"}},
                   {"name": "shipment", "outcomes": {"delivered": "won"}}],
    },
    "service": {"stages": [{"name": "diagnosis"}, {"name": "repair"}]},
}
START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def config_document(config_document):
    config_document["pipelines"] = PIPELINES
    config_document["default_pipeline"] = "service"
    return config_document


@pytest.fixture
def clock(hub):
    return Clock(hub, START)


def new_lead(client, run_jobs, api, form: str = "landing") -> int:
    response = client.post(f"/hooks/forms/{form}", data={"name": "Ivan", "phone": "+79161234567"})
    run_jobs()
    return api.get(f"/api/events/{response.get_json()['event_id']}").get_json()["lead_number"]


def escalations(hub) -> list[tuple[str, str]]:
    with hub.db.read() as session:
        rows = session.scalars(select(Notification).where(Notification.rule.startswith("escalation:"))
                               .order_by(Notification.id))
        return [(n.to, n.subject) for n in rows]


def test_in_progress_puts_the_lead_at_its_pipelines_first_stage_with_a_deadline(clock, client, run_jobs, api):
    number = new_lead(client, run_jobs, api)
    lead = api.patch(f"/api/leads/{number}", json={"status": "in_progress"}).get_json()
    assert lead["stage"] == {"pipeline": "sales", "name": "introduction", "entered_at": "2026-11-23T10:00:00+00:00",
                             "deadline": "2026-11-25T10:00:00+00:00", "overdue": False}
    entered = [h for h in lead["history"] if h["action"] == "stage_entered"]
    assert entered[0]["details"] == {"pipeline": "sales", "stage": "introduction",
                                     "due_at": "2026-11-25T10:00:00+00:00"}


def test_a_lead_no_pipelines_when_matches_follows_the_default(clock, client, run_jobs, api):
    number = new_lead(client, run_jobs, api, form="tilda")
    lead = api.patch(f"/api/leads/{number}", json={"stage": "repair"}).get_json()
    assert (lead["status"], lead["stage"]["pipeline"], lead["stage"]["name"]) == ("in_progress", "service", "repair")
    assert lead["stage"]["deadline"] is None


def test_a_stage_limit_escalates_to_the_head_then_the_director(clock, client, run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)
    api.patch(f"/api/leads/{number}", json={"status": "in_progress"})
    clock.at(START + timedelta(days=2) - timedelta(minutes=1))
    assert escalations(hub) == []
    clock.at(START + timedelta(days=2))
    title = f"Lead {number} is at stage introduction (sales) longer than 2d: move it on"
    assert escalations(hub) == [("vera@example.com", title)]
    clock.at(START + timedelta(days=3))  # the sample chain: the director a day after the head
    assert escalations(hub) == [("vera@example.com", title), ("oleg@example.com", title)]
    tasks = api.get(f"/api/leads/{number}").get_json()["tasks"]
    assert [(t["kind"], t["assignee"]) for t in tasks if t["kind"] == "escalation"] == [
        ("escalation", "vera"), ("escalation", "oleg")]
    assert api.get(f"/api/leads/{number}").get_json()["stage"]["overdue"] is True


def test_moving_the_lead_on_stops_the_chain_and_starts_the_next_stages(clock, client, run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)
    api.patch(f"/api/leads/{number}", json={"status": "in_progress"})
    clock.at(START + timedelta(days=1))
    lead = api.patch(f"/api/leads/{number}", json={"stage": "next"}).get_json()
    assert (lead["stage"]["name"], lead["stage"]["deadline"]) == ("offer", "2026-11-27T10:00:00+00:00")
    clock.at(START + timedelta(days=3))  # introduction's limit would have passed at day 2
    assert escalations(hub) == []
    clock.at(START + timedelta(days=4))  # offer's, entered at day 1, passes at day 4
    assert escalations(hub) == [("vera@example.com",
                                 f"Lead {number} is at stage offer (sales) longer than 3d: move it on")]


def test_a_status_change_stops_the_stage_chain(clock, client, run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)
    api.patch(f"/api/leads/{number}", json={"status": "in_progress"})
    lead = api.patch(f"/api/leads/{number}", json={"status": "new"}).get_json()
    assert lead["stage"] is None
    clock.at(START + timedelta(days=5))
    assert escalations(hub) == []


def test_outcomes_move_the_lead_on_or_close_it_as_won_or_lost(clock, client, run_jobs, api, hub):
    won = new_lead(client, run_jobs, api)
    api.patch(f"/api/leads/{won}", json={"stage": "offer"})
    clock.at(START + timedelta(hours=5))
    assert api.patch(f"/api/leads/{won}", json={"outcome": "accepted"}).get_json()["stage"]["name"] == "invoice"
    api.patch(f"/api/leads/{won}", json={"stage": "payment"})
    assert api.patch(f"/api/leads/{won}", json={"outcome": "paid"}).get_json()["stage"]["name"] == "shipment"
    closed = api.patch(f"/api/leads/{won}", json={"outcome": "delivered"}).get_json()
    assert (closed["status"], closed["stage"]) == ("converted", None)

    lost = new_lead(client, run_jobs, api, form="landing")
    api.patch(f"/api/leads/{lost}", json={"status": "in_progress"})
    closed = api.patch(f"/api/leads/{lost}", json={"outcome": "lost"}).get_json()  # the pipeline's own
    assert (closed["status"], closed["stage"]) == ("junk", None)

    with hub.db.read() as session:
        visits = [(v.lead_id, v.stage, v.outcome, v.seconds) for v in session.scalars(
            select(StageVisit).order_by(StageVisit.id))]
    assert visits == [(won, "offer", "accepted", 5 * 3600), (won, "invoice", "moved", 0),
                      (won, "payment", "paid", 0), (won, "shipment", "delivered", 0),
                      (lost, "introduction", "lost", 0)]
    clock.at(START + timedelta(days=10))
    assert escalations(hub) == []


def test_a_reopened_lead_resumes_at_its_stage_with_a_new_stay_and_deadline(clock, client, run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)
    api.patch(f"/api/leads/{number}", json={"status": "in_progress"})
    clock.at(START + timedelta(days=1))
    api.patch(f"/api/leads/{number}", json={"stage": "next"})  # offer, 3d
    clock.at(START + timedelta(days=1, hours=2))
    assert api.patch(f"/api/leads/{number}", json={"outcome": "declined"}).get_json()["status"] == "junk"
    clock.at(START + timedelta(days=6))  # offer's first deadline (day 4) passed while it was closed
    lead = api.patch(f"/api/leads/{number}", json={"status": "in_progress"}).get_json()
    assert lead["stage"] == {"pipeline": "sales", "name": "offer", "entered_at": "2026-11-29T10:00:00+00:00",
                             "deadline": "2026-12-02T10:00:00+00:00", "overdue": False}
    assert escalations(hub) == []
    clock.at(START + timedelta(days=9) - timedelta(minutes=1))
    assert escalations(hub) == []
    clock.at(START + timedelta(days=9))  # three days from the reopening
    assert escalations(hub) == [("vera@example.com",
                                 f"Lead {number} is at stage offer (sales) longer than 3d: move it on")]
    with hub.db.read() as session:
        visits = [(v.stage, v.entered_at.replace(tzinfo=UTC), v.outcome, v.seconds) for v in session.scalars(
            select(StageVisit).where(StageVisit.lead_id == number).order_by(StageVisit.id))]
    assert visits == [("introduction", START, "moved", 86400),
                      ("offer", START + timedelta(days=1), "declined", 7200),
                      ("offer", START + timedelta(days=6), None, None)]


def test_a_lead_put_back_to_new_resumes_its_stage_when_taken_in_progress_again(clock, client, run_jobs, api):
    number = new_lead(client, run_jobs, api)
    api.patch(f"/api/leads/{number}", json={"stage": "payment"})
    assert api.patch(f"/api/leads/{number}", json={"status": "converted"}).get_json()["stage"] is None
    other = new_lead(client, run_jobs, api, form="tilda")  # the same client again: a new lead
    assert api.patch(f"/api/leads/{number}", json={"status": "new"}).get_json()["stage"] is None
    clock.at(START + timedelta(hours=3))
    lead = api.patch(f"/api/leads/{number}", json={"status": "in_progress"}).get_json()
    assert (lead["stage"]["name"], lead["stage"]["entered_at"]) == ("payment", "2026-11-23T13:00:00+00:00")
    assert other != number  # never at a stage: its pipeline's first
    assert api.patch(f"/api/leads/{other}", json={"status": "in_progress"}).get_json()["stage"]["name"] == "diagnosis"


def test_stages_and_outcomes_the_pipeline_lacks_are_refused_naming_the_field(clock, client, run_jobs, api):
    number = new_lead(client, run_jobs, api)
    response = api.patch(f"/api/leads/{number}", json={"stage": "repair"})
    assert response.status_code == 422 and "repair" in response.get_json()["fields"]["stage"]
    response = api.patch(f"/api/leads/{number}", json={"outcome": "accepted"})
    assert response.status_code == 422 and response.get_json()["fields"]["outcome"].startswith("outcomes here")
    api.patch(f"/api/leads/{number}", json={"stage": "shipment"})
    assert api.patch(f"/api/leads/{number}", json={"stage": "next"}).status_code == 422
    assert api.patch(f"/api/leads/{number}", json={"stage": "offer", "status": "new"}).status_code == 400
    assert api.patch(f"/api/leads/{number}", json={"stage": 3}).get_json()["fields"] == {"stage": "not a string"}
    lead = api.get(f"/api/leads/{number}").get_json()
    assert (lead["status"], lead["stage"]["name"]) == ("in_progress", "shipment")


def test_the_leads_list_filters_by_stage(clock, client, run_jobs, api):
    first = new_lead(client, run_jobs, api)
    api.patch(f"/api/leads/{first}", json={"stage": "offer"})
    items = api.get("/api/leads?stage=offer").get_json()["items"]
    assert [item["number"] for item in items] == [first]
    assert api.get("/api/leads?stage=invoice").get_json()["items"] == []


def test_outcome_labels_come_from_where_the_outcome_is_offered():
    config = load_config(document={"pipelines": {"sales": {
        "stages": [{"name": "offer", "outcomes": {"lost": {"to": "lost", "label": "Refused the offer"},
                                                  "won": "won"}},
                   {"name": "invoice", "outcomes": {"paid": {"to": "won", "label": "Paid"}}}],
        "outcomes": {"won": {"to": "won", "label": "Won"}, "lost": {"to": "lost", "label": "Lost"}}}}})
    at_offer, at_invoice = (Lead(pipeline="sales", stage=stage) for stage in ("offer", "invoice"))
    assert stages.outcome_labels_at(config, at_offer) == {"lost": "Refused the offer"}  # its own won: no label
    assert stages.outcome_labels_at(config, at_invoice) == {"won": "Won", "lost": "Lost", "paid": "Paid"}
    assert stages.outcome_labels_at(config, Lead(pipeline="sales")) == {}


@pytest.mark.parametrize("change,problem", [
    ({"pipelines": {"sales": {"stages": [{"name": "a", "limt": "1d"}]}}},
     "pipelines.sales.stages.0.limt: unknown key; did you mean 'limit'?"),
    ({"pipelines": {"sales": {"stages": [{"name": "a", "outcomes": {"ok": "b"}}]}}},
     "pipelines.sales.stages.0.outcomes.ok: 'b' is not next, won, lost or a stage of this pipeline "
     "(one of a, lost, next, won)"),
    ({"pipelines": {"sales": {"stages": [{"name": "won"}]}}},
     "pipelines.sales.stages.0.name: 'won' is reserved (next, won, lost and the lead statuses)"),
    ({"default_pipeline": "sale", "pipelines": {"sales": {"stages": [{"name": "a"}]}}},
     "default_pipeline: no pipeline is called 'sale'; did you mean 'sales'?"),
    ({"pipelines": {"sales": {"stages": [{"name": "offer"}]}},
      "crm": [{"target": "bitrix24", "webhook_url_env": "B24_URL", "stage_ids": {"ofer": "UC_OFFER"}}]},
     "crm.0.stage_ids.ofer: no pipeline has the stage 'ofer'; did you mean 'offer'?"),
])
def test_check_config_names_pipeline_problems(change, problem, monkeypatch):
    monkeypatch.setenv("B24_URL", "https://example.bitrix24.ru/rest/1/abc/")
    with pytest.raises(ConfigError) as error:
        load_config(document=change)
    assert problem in error.value.problems
