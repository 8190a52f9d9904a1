"""Manual assignment: a routing rule leaves the lead to the head, who assigns it in the console
(or anywhere else: the API, the CRM); the head's task closes and the manager's call task opens."""
from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hub.runtime import scheduler
from hub.store.models import Lead, Task


@pytest.fixture
def config_document(config_document):
    config_document["routing"] = [{"name": "wholesale", "when": {"utm_source": ["wholesale"]},
                                   "assign": {"strategy": "manual", "by": "head", "within": "30m"}}]
    return config_document


def tasks_of(hub, number) -> list[tuple]:
    with hub.db.read() as session:
        return [(t.kind, t.assignee_id, t.status) for t in
                session.scalars(select(Task).where(Task.lead_id == number).order_by(Task.id))]


def test_a_manual_rule_leaves_the_lead_to_the_head(make_lead, hub, team):
    number = make_lead(utm_source="wholesale")
    with hub.db.read() as session:
        lead = session.get(Lead, number)
        task = session.scalar(select(Task).where(Task.lead_id == number))
    assert lead.assignee_id is None
    assert lead.assignment_reason == "rule 'wholesale' -> waits for the head to assign a manager"
    assert (task.kind, task.assignee_id, task.status) == ("assign", "vera", "open")
    assert task.due_at == lead.created_at + timedelta(minutes=30)
    assert tasks_of(hub, make_lead("Other", "+79160000001")) == [("call", "anna", "open")]


def test_an_unassigned_lead_escalates_to_the_director_after_its_own_sla(make_lead, hub, team):
    number = make_lead(utm_source="wholesale")
    later = hub.now() + timedelta(minutes=31)
    hub.clock = lambda: later
    scheduler.tick(hub)
    assert tasks_of(hub, number) == [("assign", "vera", "open"), ("escalation", "oleg", "open")]


def test_assigning_from_the_queue_closes_the_heads_task_and_opens_the_managers(console, make_lead, hub):
    number = make_lead(utm_source="wholesale")
    vera = console("vera")
    queue = vera.get("/console/unassigned").text
    assert f'id="lead-{number}"' in queue and 'value="boris"' in queue
    later = hub.now() + timedelta(minutes=10)
    hub.clock = lambda: later
    answer = vera.post(f"/console/leads/{number}/assignee", {"assignee": "boris", "next": "/console/unassigned"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/unassigned"
    assert tasks_of(hub, number) == [("assign", "vera", "done"), ("call", "boris", "open")]
    with hub.db.read() as session:
        call = session.scalar(select(Task).where(Task.lead_id == number, Task.kind == "call"))
    assert call.due_at == later + timedelta(hours=1)  # the manager's first response counts from now
    assert f'id="lead-{number}"' not in vera.get("/console/unassigned").text
    hub.clock = lambda: later + timedelta(hours=2)
    scheduler.tick(hub)  # the escalation while it waited has stopped; the manager's own chain runs
    assert tasks_of(hub, number)[-1] == ("escalation", "vera", "open")


def test_assigning_through_the_api_as_a_crm_would_does_the_same(make_lead, hub, team, api):
    number = make_lead(utm_source="wholesale")
    assert api.patch(f"/api/leads/{number}", json={"assignee": "anna"}).status_code == 200
    assert tasks_of(hub, number) == [("assign", "vera", "done"), ("call", "anna", "open")]


def test_the_queue_is_for_heads_and_directors(console):
    assert console("anna").get("/console/unassigned").status_code == 403
    assert console("oleg").get("/console/unassigned").status_code == 200


def test_check_config_names_an_unknown_assigner(config_document, tmp_path):
    import yaml

    from hub.runtime.cli import main
    config_document["routing"][0]["assign"]["by"] = "chief"
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(config_document, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 1
    assert "routing.0.assign.by: not a role (head, director) or team member id" in result.output
