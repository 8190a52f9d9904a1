"""The JSON API, health and metrics."""
from __future__ import annotations

from tests.helpers import API_TOKEN


def post(client, phone, **extra):
    response = client.post("/hooks/forms/landing", data={"phone": phone, **extra})
    assert response.status_code == 202
    return response.get_json()["event_id"]


def test_api_needs_the_bearer_token(client, monkeypatch):
    assert client.get("/api/leads").status_code == 401
    wrong = client.get("/api/leads", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.get_json()["fields"] == {"Authorization": "invalid"}
    monkeypatch.delenv("HUB_API_TOKEN")
    disabled = client.get("/api/leads", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert disabled.status_code == 401 and "HUB_API_TOKEN" in disabled.get_json()["error"]


def test_event_shape_before_and_after_processing(client, api, run_jobs):
    event_id = post(client, "+79161234567")
    pending = api.get(f"/api/events/{event_id}").get_json()
    assert {k: pending[k] for k in ("event_id", "channel", "provider", "status", "lead_number", "error")} == {
        "event_id": event_id, "channel": "form", "provider": "generic", "status": "pending",
        "lead_number": None, "error": None}
    assert pending["received_at"].endswith("+00:00")
    run_jobs()
    assert api.get(f"/api/events/{event_id}").get_json()["lead_number"] == 1
    assert api.get("/api/events/unknown").status_code == 404


def test_leads_list_filters_and_pages_newest_first(client, api, run_jobs):
    for index in range(5):
        post(client, f"+7916000000{index}", utm_source="yandex" if index % 2 else "google",
             email=f"c{index}@example.com")
    run_jobs()
    first = api.get("/api/leads?limit=2").get_json()
    assert [lead["number"] for lead in first["items"]] == [5, 4]
    second = api.get(f"/api/leads?limit=2&cursor={first['next_cursor']}").get_json()
    assert [lead["number"] for lead in second["items"]] == [3, 2]
    last = api.get(f"/api/leads?limit=2&cursor={second['next_cursor']}").get_json()
    assert ([lead["number"] for lead in last["items"]], last["next_cursor"]) == ([1], None)
    by_phone = api.get("/api/leads?phone=8 (916) 000-00-03").get_json()["items"]
    assert [lead["number"] for lead in by_phone] == [4]
    by_source = api.get("/api/leads?utm_source=yandex").get_json()["items"]
    assert [lead["number"] for lead in by_source] == [4, 2]
    by_email = api.get("/api/leads?email=C2@example.com").get_json()["items"]
    assert [lead["number"] for lead in by_email] == [3]
    assert api.get("/api/leads?status=new&channel=form").get_json()["items"][0]["number"] == 5
    by_assignee = api.get("/api/leads?assignee=boris").get_json()["items"]  # round-robin: 2nd, 4th
    assert [(lead["number"], lead["assignee"]["id"]) for lead in by_assignee] == [(4, "boris"), (2, "boris")]


def test_bad_query_parameters_name_the_field(api):
    assert api.get("/api/leads?limit=0").get_json()["fields"] == {"limit": "1..200"}
    assert api.get("/api/leads?status=lost").get_json()["fields"] == {"status": "invalid"}
    assert api.get("/api/leads?phone=abc").get_json()["fields"].keys() == {"phone"}
    assert api.get("/api/leads/999").status_code == 404


def test_an_unknown_filter_is_refused_naming_it(api):
    answer = api.get("/api/leads?asignee=boris")
    assert answer.status_code == 400 and answer.get_json()["fields"] == {"asignee": "unknown filter"}
    assert api.get("/api/events?channel=form").get_json()["fields"] == {"channel": "unknown filter"}


def test_events_list_filters_by_kind_provider_status(client, api, run_jobs):
    post(client, "+79161234567")
    client.post("/hooks/forms/tilda", data={"Phone": "+79161230000", "tranid": "1:1"})
    run_jobs()
    assert len(api.get("/api/events?kind=form").get_json()["items"]) == 2
    tilda = api.get("/api/events?provider=tilda").get_json()["items"]
    assert [e["provider"] for e in tilda] == ["tilda"]
    assert len(api.get("/api/events?status=processed&kind=forms").get_json()["items"]) == 2


def test_healthz_names_what_is_down(client, hub):
    assert client.get("/healthz").get_json() == {
        "db": "ok", "redis": "ok", "sources": {"forms/landing": "ok", "forms/tilda": "ok", "forms/wordpress": "ok"}}
    import redis

    from hub.store.queue import Kicker
    hub.kicker = Kicker(lambda: redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2))
    down = client.get("/healthz")
    assert down.status_code == 503
    assert down.get_json()["db"] == "ok" and down.get_json()["redis"].startswith("down")


def test_metrics_count_intake_and_backlog(client):
    post(client, "+79161234567")
    client.post("/hooks/forms/landing", data={"name": "no phone"})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'hub_events_total{kind="forms",outcome="accepted",provider="generic"}' in text
    assert 'hub_events_total{kind="forms",outcome="rejected",provider="generic"}' in text
    assert 'hub_events_backlog{status="pending"} 1.0' in text
    assert "hub_queue_depth" in text and "hub_pipeline_latency_seconds" in text


def test_patch_lead_changes_status_and_assignee(client, api, run_jobs):
    post(client, "+79161234567")
    run_jobs()
    updated = api.patch("/api/leads/1", json={"status": "in_progress", "assignee": "boris"})
    assert updated.status_code == 200
    lead = updated.get_json()
    assert (lead["status"], lead["assignee"]["id"]) == ("in_progress", "boris")
    assert lead["assignment_reason"] == "reassigned to boris via the API"
    assert api.patch("/api/leads/1", json={"status": "lost"}).get_json()["fields"] == {"status": "invalid"}
    assert api.patch("/api/leads/1", json={"assignee": "ghost"}).status_code == 422
    assert api.patch("/api/leads/1", json=[]).status_code == 400
    assert api.patch("/api/leads/77", json={"status": "junk"}).status_code == 404


def test_task_done_closes_it_once(client, api, run_jobs, hub):
    from hub.store.models import Task

    post(client, "+79161234567")
    run_jobs()
    with hub.db.write() as session:
        session.add(Task(lead_id=1, kind="call", title="Call +79161234567", assignee_id="anna"))
    closed = api.post("/api/tasks/1/done", json={"outcome": "reached, meeting on Monday"})
    assert closed.get_json()["status"] == "done"
    assert closed.get_json()["outcome"] == "reached, meeting on Monday"
    again = api.post("/api/tasks/1/done", json={"outcome": "other"})
    assert again.get_json()["outcome"] == "reached, meeting on Monday"
    assert api.post("/api/tasks/9/done", json={}).status_code == 404
