"""The pipeline through real Redis and rq: intake -> lead, touch, assignment, confirmation."""
from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select, update

from hub import retry
from hub.delivery.replay import replay_events
from hub.pipeline import process_pending
from hub.runtime import scheduler
from hub.store.models import Lead, Notification, RawEvent, TeamMember, Touch

from tests.helpers import insert_pending_forms

FORM = {"name": "Ivan Petrov", "phone": "8 (916) 123-45-67", "email": "Ivan@Example.com",
        "utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "brand", "utm_term": "crm",
        "utm_content": "ad1", "gclid": "EAIaIQobChMI", "yclid": "123456",
        "message": "Need a quote"}
REFERER = "https://site.example/landing?utm_source=yandex&utm_medium=cpc"


def post(client, data, **headers):
    response = client.post("/hooks/forms/landing", data=data, headers=headers)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["event_id"]


def lead_of(api, event_id):
    event = api.get(f"/api/events/{event_id}").get_json()
    assert event["status"] == "processed", event
    return api.get(f"/api/leads/{event['lead_number']}").get_json()


def count(hub, model, *where):
    with hub.db.read() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_form_becomes_a_lead_with_attribution_assignee_and_confirmation(client, api, run_jobs, logs, hub):
    hub.config["sms"]["quiet_hours"] = None  # the SMS goes now, whatever the hour
    event_id = post(client, FORM, Referer=REFERER)
    run_jobs()
    lead = lead_of(api, event_id)
    assert (lead["name"], lead["phone"], lead["email"]) == ("Ivan Petrov", "+79161234567", "ivan@example.com")
    assert lead["channel"] == "form" and lead["status"] == "new"
    assert lead["source"] == {
        "utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "brand", "utm_term": "crm",
        "utm_content": "ad1", "gclid": "EAIaIQobChMI", "yclid": "123456", "referrer": REFERER,
        "landing_page": REFERER, "form": "landing", "mailbox": None, "called_number": None}
    assert lead["assignee"] == {"id": "anna", "name": "Anna Petrova"}
    assert "round-robin over [anna, boris]" in lead["assignment_reason"]
    assert [t["event_id"] for t in lead["touches"]] == [event_id]
    assert lead["touches"][0]["details"]["fields"]["message"] == "Need a quote"
    by_channel = {n["channel"]: n for n in lead["notifications"]}
    assert by_channel["sms"]["status"] == "sent" and by_channel["email"]["status"] == "sent"
    assert by_channel["sms"]["text"].endswith(f"Номер {lead['number']}")
    sent = [json.loads(line) for line in logs["sms"].read_text().splitlines()]
    assert sent == [{**sent[0], "to": "+79161234567", "text": by_channel["sms"]["text"]}]
    mails = [json.loads(line) for line in logs["mail"].read_text().splitlines()]
    assert [m["to"] for m in mails] == ["ivan@example.com"]


def test_same_phone_again_is_a_touch_on_the_same_lead(client, api, run_jobs, hub, logs):
    hub.config["sms"]["quiet_hours"] = None  # the SMS goes now, whatever the hour
    first = post(client, FORM)
    run_jobs()
    second = post(client, {"name": "Ivan", "phone": "+79161234567", "utm_source": "google",
                           "message": "me again"})
    run_jobs()
    lead = lead_of(api, second)
    assert lead["number"] == lead_of(api, first)["number"]
    assert [t["event_id"] for t in lead["touches"]] == [first, second]
    assert lead["source"]["utm_source"] == "yandex"
    assert lead["last_source"]["utm_source"] == "google"
    assert count(hub, Lead) == 1
    assert len(logs["sms"].read_text().splitlines()) == 1  # confirmed once, not per touch


def test_same_email_matches_too_and_fills_the_missing_phone(client, api, run_jobs, hub):
    hub.config["forms"]["landing"]["required"] = []
    first = post(client, {"name": "Mail Only", "email": "m@example.com"})
    run_jobs()
    second = post(client, {"email": "M@EXAMPLE.com", "phone": "+79031234567"})
    run_jobs()
    lead = lead_of(api, second)
    assert lead["number"] == lead_of(api, first)["number"]
    assert lead["phone"] == "+79031234567"


def test_a_closed_lead_does_not_absorb_a_new_request(client, api, run_jobs, hub):
    event_id = post(client, FORM)
    run_jobs()
    first = lead_of(api, event_id)
    with hub.db.write() as session:
        session.execute(update(Lead).values(status="converted"))
    again = post(client, {**FORM, "message": "new order"})
    run_jobs()
    assert lead_of(api, again)["number"] != first["number"]


def test_a_returning_client_goes_back_to_the_owner_of_their_closed_lead(client, api, run_jobs, hub):
    first = post(client, {"name": "Returning", "phone": "+79160000100", "email": "back@example.com"})
    run_jobs()
    assert lead_of(api, first)["assignee"]["id"] == "anna"
    with hub.db.write() as session:
        session.execute(update(Lead).values(status="converted"))
    others = [post(client, {"phone": f"+7916000020{i}"}) for i in range(2)]
    run_jobs()
    assert [lead_of(api, e)["assignee"]["id"] for e in others] == ["boris", "anna"]  # round robin's next: boris
    by_phone = post(client, {"phone": "+79160000100", "message": "again"})
    by_email = post(client, {"phone": "+79160000300", "email": "BACK@example.com", "message": "and again"})
    run_jobs()
    for event_id in (by_phone, by_email):
        lead = lead_of(api, event_id)
        assert lead["number"] != lead_of(api, first)["number"]
        assert lead["assignee"]["id"] == "anna"


def team_names(hub) -> dict:
    with hub.db.read() as session:
        return dict(session.execute(select(TeamMember.id, TeamMember.name)).all())


def test_the_team_is_mirrored_again_only_when_it_changes(client, run_jobs, hub):
    post(client, {"phone": "+79160000401"})
    run_jobs()
    assert team_names(hub)["anna"] == hub.config["team"][0]["name"]
    with hub.db.write() as session:  # a row changed behind the pipeline's back stays as it is...
        session.execute(update(TeamMember).where(TeamMember.id == "anna").values(name="left alone"))
    post(client, {"phone": "+79160000402"})
    run_jobs()
    assert team_names(hub)["anna"] == "left alone"
    hub.config["team"][0]["name"] = "Anna Renamed"  # ...until the config's team changes
    post(client, {"phone": "+79160000403"})
    run_jobs()
    assert team_names(hub)["anna"] == "Anna Renamed"


def test_round_robin_alternates_and_survives_batches(client, api, run_jobs):
    owners = []
    for index in range(4):
        event_id = post(client, {"name": f"Client {index}", "phone": f"+7916000000{index}"})
        run_jobs()
        owners.append(lead_of(api, event_id)["assignee"]["id"])
    assert owners == ["anna", "boris", "anna", "boris"]


def test_lead_numbers_are_one_sequence(client, api, run_jobs):
    ids = [post(client, {"phone": f"+7916111000{i}"}) for i in range(3)]
    run_jobs()
    assert [lead_of(api, e)["number"] for e in ids] == [1, 2, 3]


def test_replay_never_duplicates(client, api, run_jobs, hub):
    event_id = post(client, FORM)
    run_jobs()
    before = lead_of(api, event_id)
    outcome = replay_events(hub, event_id=event_id)
    run_jobs()
    assert outcome == [f"{event_id} processed lead {before['number']}"]
    assert count(hub, Lead) == 1 and count(hub, Touch) == 1
    assert count(hub, Notification) == 2
    assert lead_of(api, event_id)["touches"] == before["touches"]


def test_a_broken_event_is_isolated_failed_and_replayable(client, api, run_jobs, hub):
    good = post(client, {"phone": "+79160000001"})
    bad = post(client, {"phone": "+79160000002"})
    after = post(client, {"phone": "+79160000003"})
    hub.db.file_intake()
    with hub.db.write() as session:  # a body the stored content type cannot parse
        session.execute(update(RawEvent).where(RawEvent.event_id == bad).values(
            headers={"content-type": "application/json"}, body=b"{broken"))
    run_jobs()
    assert lead_of(api, good)["phone"] == "+79160000001"
    assert lead_of(api, after)["phone"] == "+79160000003"
    failed = api.get(f"/api/events/{bad}").get_json()
    assert failed["status"] == "failed" and "BadRequest" in failed["error"]
    assert api.get("/api/events?status=failed").get_json()["items"][0]["event_id"] == bad
    with hub.db.write() as session:
        session.execute(update(RawEvent).where(RawEvent.event_id == bad).values(
            headers={"content-type": "application/x-www-form-urlencoded"}, body=b"phone=%2B79160000002"))
    assert replay_events(hub, failed=True)[0].startswith(f"{bad} processed lead")


def test_failed_events_are_retried_with_backoff_then_dead(client, api, run_jobs, hub):
    bad = post(client, {"phone": "+79160000002"})
    hub.db.file_intake()
    with hub.db.write() as session:
        session.execute(update(RawEvent).values(headers={"content-type": "application/json"}, body=b"["))
    start = hub.now()
    for attempt in range(1, hub.config["pipeline"]["max_attempts"] + 1):
        run_jobs()
        event = api.get(f"/api/events/{bad}").get_json()
        assert event["attempts"] == attempt
        with hub.db.read() as session:
            retry_at = session.scalar(select(RawEvent.retry_at))
        hub.clock = lambda moment=retry_at: moment  # jump to the retry time
        scheduler.tick(hub)
    assert api.get(f"/api/events/{bad}").get_json()["status"] == "dead"
    assert retry_at - start > retry.for_events(hub.config["pipeline"]).delay(1)


def test_event_without_any_contact_is_ignored_with_a_reason(client, api, run_jobs, hub):
    hub.config["forms"]["landing"]["required"] = []
    event_id = post(client, {"name": "Anonymous", "message": "hello"})
    run_jobs()
    event = api.get(f"/api/events/{event_id}").get_json()
    assert (event["status"], event["lead_number"]) == ("ignored", None)
    assert "no contact" in event["error"]
    assert count(hub, Lead) == 0


def test_honeypot_event_makes_no_lead(client, api, run_jobs, hub, logs):
    event_id = post(client, {**FORM, "website": "http://bot.example"})
    run_jobs()
    event = api.get(f"/api/events/{event_id}").get_json()
    assert (event["status"], event["error"]) == ("ignored", "honeypot")
    assert count(hub, Lead) == 0 and not logs["sms"].exists()


def test_coalesced_kicks_lose_nothing(hub, client, api, redis_client):
    """Under load a web process kicks at most every ``coalesce`` seconds; a job lingers longer
    than that, so an event whose kick was skipped is still picked up."""
    import threading
    import time

    from rq import Queue, SimpleWorker

    hub.config["pipeline"]["linger"] = timedelta(seconds=2)
    hub.kicker.coalesce = 1.5
    queue = Queue("hub", connection=redis_client)
    first = post(client, {"phone": "+79160000001"})
    seen = {}

    def post_while_the_job_runs():
        deadline = time.monotonic() + 20
        while api.get(f"/api/events/{first}").get_json()["status"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.01)
        seen["second"] = post(client, {"phone": "+79160000002"})  # kick skipped: one was just made
        seen["queued"] = [job.func_name for job in queue.get_jobs()].count("hub.runtime.jobs.process_pending")

    poster = threading.Thread(target=post_while_the_job_runs)
    poster.start()
    # in the main thread: rq uses signals
    SimpleWorker([queue], connection=redis_client).work(burst=True, with_scheduler=False)
    poster.join(timeout=30)
    assert seen["queued"] == 0
    assert api.get(f"/api/events/{seen['second']}").get_json()["status"] == "processed"


def test_one_batch_makes_each_person_one_lead_and_links_every_event(hub):
    """New leads are written together at the end of a batch: a person met twice in the same
    batch is one lead with two touches, and every event points at its lead."""
    phones = ["+79160000001", "+79160000002", "+79160000001", "+79160000003", "+79160000002"]
    insert_pending_forms(hub, phones)
    result = process_pending(hub)
    assert result.events == 5 and len(result.new_leads) == 3
    with hub.db.read() as session:
        leads = {lead.phone: lead for lead in session.scalars(select(Lead).order_by(Lead.id))}
        events = list(session.scalars(select(RawEvent).order_by(RawEvent.id)))
        touches = dict(session.execute(select(Touch.event_id, Touch.lead_id)).all())
        confirmations = session.execute(
            select(Notification.lead_id, func.count())
            .where(Notification.channel == "sms")
            .group_by(Notification.lead_id)
        ).all()
    assert [lead.id for lead in leads.values()] == result.new_leads
    assert list(leads) == ["+79160000001", "+79160000002", "+79160000003"]  # numbered in order of arrival
    assert [event.status for event in events] == ["processed"] * 5
    assert [event.lead_id for event in events] == [leads[phone].id for phone in phones]
    assert {event.event_id: event.lead_id for event in events} == touches
    assert sorted(confirmations) == [(lead.id, 1) for lead in leads.values()]


def test_the_first_batch_of_a_call_is_sized_to_the_slice_at_the_pace_of_earlier_batches(hub, monkeypatch):
    """On SQLite a batch holds the writer lock, which the intake's commits wait for: even the
    first batch of a drain takes only as many events as the earlier batches' pace fits in the
    slice."""
    import hub.pipeline as pipeline

    hub.config["pipeline"]["slice"] = timedelta(milliseconds=50)
    hub.pace[pipeline.PACE] = 0.002  # 2 ms an event: 25 events fit in the slice
    insert_pending_forms(hub, [f"+7916{number:07d}" for number in range(60)])
    sizes, batch = [], pipeline.process_batch
    monkeypatch.setattr(pipeline, "process_batch", lambda *args: sizes.append(args[1]) or batch(*args))
    result = process_pending(hub)
    if pipeline.shares_writer_lock(hub):
        assert sizes[0] == 25
    else:  # PostgreSQL: the intake never waits for a batch, so batches are whole
        assert sizes[0] == hub.config["pipeline"]["batch_size"]
    assert result.events == 60 and count(hub, RawEvent, RawEvent.status == "processed") == 60
    assert hub.pace[pipeline.PACE] != 0.002  # learned again from the batches just made


def test_batches_grow_while_no_writer_queues_and_keep_to_the_slice_while_one_does(hub, monkeypatch):
    """A backlog with nobody else writing drains in ever larger batches; a writer queued for
    SQLite's lock (an intake group) keeps every batch to the slice. On PostgreSQL batches are whole."""
    import fcntl

    import hub.pipeline as pipeline

    sizes, batch = [], pipeline.process_batch
    monkeypatch.setattr(pipeline, "process_batch", lambda *args: sizes.append(args[1]) or batch(*args))
    insert_pending_forms(hub, [f"+7916{number:07d}" for number in range(300)])
    if not pipeline.shares_writer_lock(hub):  # PostgreSQL: no lock shared with the intake, whole batches
        assert process_pending(hub).events == 300
        assert sizes == [hub.config["pipeline"]["batch_size"]]
        return
    monkeypatch.setattr(pipeline, "slice_size", lambda *args: 20)
    assert process_pending(hub).events == 300
    assert sizes == [20, 40, 80, 160, 320]
    sizes.clear()
    insert_pending_forms(hub, [f"+7917{number:07d}" for number in range(60)])
    with open(hub.db.writer_lock.queue_path, "a+b") as queued_writer:
        fcntl.flock(queued_writer, fcntl.LOCK_SH)
        assert process_pending(hub).events == 60
    assert sizes == [20, 20, 20, 20]
