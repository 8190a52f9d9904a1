"""Calls through the whole hub: one call one touch, call tracking, missed-call ladder."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from hub.runtime import scheduler
from hub.store.models import Lead, RawEvent, Touch

from tests.helpers import ZADARMA_SECRET, post_zadarma, zadarma_call, zadarma_signed

CLIENT, TRACKING = "79161234567", "74951234567"


@pytest.fixture
def telephony(config_document, monkeypatch):
    monkeypatch.setenv("ZADARMA_SECRET", ZADARMA_SECRET)
    config_document["telephony"] = {
        "zadarma": {"secret_env": "ZADARMA_SECRET"},
        "numbers": {"+74951234567": {"utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "brand"}}}
    config_document["callbacks"] = {"ladder": ["5m", "30m", "3h", "1d"]}
    config_document["confirmations"] = [
        {"channel": "sms", "when": {"channel": ["call"], "call_status": ["missed"], "mobile": True},
         "text": "Мы пропустили ваш звонок и перезвоним. Номер заявки {number}"}]


@pytest.fixture
def frozen(telephony, hub):
    moment = hub.now()
    hub.clock = lambda: moment
    return hub


def lead_by_phone(api, phone="+79161234567"):
    [lead] = api.get(f"/api/leads?phone={phone}").get_json()["items"]
    return lead


def test_missed_call_from_a_new_number(frozen, client, run_jobs, api, logs):
    for event in zadarma_call("in_" + "a" * 40, "missed"):
        post_zadarma(client, event)
    run_jobs()
    lead = lead_by_phone(api)
    assert lead["channel"] == "call"
    assert {k: lead["source"][k] for k in ("utm_source", "utm_medium", "utm_campaign", "called_number")} == {
        "utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "brand", "called_number": "+74951234567"}
    [touch] = lead["touches"]
    assert {k: touch["details"][k] for k in ("call_id", "direction", "status", "duration", "extension")} == {
        "call_id": "in_" + "a" * 40, "direction": "inbound", "status": "missed", "duration": 0, "extension": "101"}
    callbacks = [t for t in lead["tasks"] if t["kind"] == "callback"]
    assert [(t["title"], t["step"], t["status"]) for t in callbacks] == [("Call back +79161234567", 1, "open")]
    created = lead["created_at"]
    from datetime import datetime
    assert datetime.fromisoformat(callbacks[0]["due_at"]) - datetime.fromisoformat(created) == timedelta(minutes=5)
    [sms] = lead["notifications"]
    assert sms["text"] == f"Мы пропустили ваш звонок и перезвоним. Номер заявки {lead['number']}"


def test_events_in_reverse_order_and_twice_make_one_touch(telephony, client, run_jobs, api, hub):
    events = zadarma_call("in_" + "b" * 40, "answered")
    answers = [post_zadarma(client, e).status_code for e in reversed(events)] + \
              [post_zadarma(client, e).status_code for e in reversed(events)]
    assert answers == [200] * 8  # Zadarma gets its empty 200 either way
    run_jobs()
    lead = lead_by_phone(api)
    [touch] = lead["touches"]
    assert touch["details"]["status"] == "answered" and touch["details"]["duration"] == 95
    with hub.db.read() as session:
        assert session.scalar(select(func.count()).select_from(RawEvent)) == 4  # repeats stored once
        assert session.scalar(select(func.count()).select_from(Touch)) == 1
    assert [t for t in lead["tasks"] if t["kind"] == "callback"] == []


def test_a_late_ringing_does_not_undo_an_answered_call(telephony, client, run_jobs, api):
    events = zadarma_call("in_" + "c" * 40, "answered")
    for event in events[2:]:
        post_zadarma(client, event)
    run_jobs()
    for event in events[:2]:  # START and INTERNAL arrive after END
        post_zadarma(client, event)
    run_jobs()
    assert lead_by_phone(api)["touches"][0]["details"]["status"] == "answered"


def test_ladder_advances_and_stops_when_the_client_calls_back(telephony, client, run_jobs, api, hub):
    for event in zadarma_call("in_" + "d" * 40, "missed"):
        post_zadarma(client, event)
    run_jobs()
    start = hub.now()
    for minutes in (5, 30):
        moment = start + timedelta(minutes=minutes, seconds=1)
        hub.clock = lambda moment=moment: moment
        scheduler.tick(hub)
    steps = [(t["step"], t["status"]) for t in lead_by_phone(api)["tasks"] if t["kind"] == "callback"]
    assert steps == [(1, "expired"), (2, "expired"), (3, "open")]
    for event in zadarma_call("in_" + "e" * 40, "answered"):
        post_zadarma(client, event)
    run_jobs()
    lead = lead_by_phone(api)
    callbacks = [t for t in lead["tasks"] if t["kind"] == "callback"]
    assert callbacks[-1]["status"] == "done"
    assert callbacks[-1]["outcome"] == "client reached: answered inbound call"
    moment = start + timedelta(days=2)
    hub.clock = lambda: moment
    scheduler.tick(hub)
    assert lead_by_phone(api)["status"] == "new"  # not archived: the ladder stopped
    assert len(lead["touches"]) == 2


def test_exhausted_ladder_archives_the_lead(telephony, client, run_jobs, api, hub):
    for event in zadarma_call("in_" + "f" * 40, "missed"):
        post_zadarma(client, event)
    run_jobs()
    start = hub.now()
    for offset in (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=3), timedelta(days=1)):
        moment = start + offset + timedelta(seconds=1)
        hub.clock = lambda moment=moment: moment
        scheduler.tick(hub)
    lead = lead_by_phone(api)
    assert lead["status"] == "archived"
    assert [t["status"] for t in lead["tasks"] if t["kind"] == "callback"] == ["expired"] * 4


def test_a_manager_closing_the_callback_task_stops_the_ladder(telephony, client, run_jobs, api, hub):
    for event in zadarma_call("in_" + "1" * 40, "missed"):
        post_zadarma(client, event)
    run_jobs()
    [task] = [t for t in lead_by_phone(api)["tasks"] if t["kind"] == "callback"]
    api.post(f"/api/tasks/{task['id']}/done", json={"outcome": "called back, wants a quote"})
    moment = hub.now() + timedelta(days=3)
    hub.clock = lambda: moment
    scheduler.tick(hub)
    callbacks = [t for t in lead_by_phone(api)["tasks"] if t["kind"] == "callback"]
    assert [(t["status"], t["outcome"]) for t in callbacks] == [("done", "called back, wants a quote")]


def test_outgoing_calls_and_withheld_numbers_make_no_lead(telephony, client, run_jobs, api, hub):
    outgoing = {"event": "NOTIFY_OUT_END", "call_start": "2026-11-23 13:00:00", "pbx_call_id": "out_" + "2" * 40,
                "internal": "101", "destination": "79035550000", "caller_id": TRACKING,
                "disposition": "answered", "duration": "30", "status_code": "16", "is_recorded": "0"}
    post_zadarma(client, zadarma_signed(outgoing))
    for event in zadarma_call("in_" + "3" * 40, "missed", caller="0"):
        post_zadarma(client, event)
    run_jobs()
    with hub.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 0
        reasons = set(session.scalars(select(RawEvent.error)))
    assert reasons == {"outgoing call to a number with no open lead",
                       "anonymous caller: the call is recorded, no lead can be made without a number"}


def test_an_answered_outgoing_call_stops_the_ladder(telephony, client, run_jobs, api):
    for event in zadarma_call("in_" + "4" * 40, "missed"):
        post_zadarma(client, event)
    run_jobs()
    outgoing = {"event": "NOTIFY_OUT_END", "call_start": "2026-11-23 13:10:00", "pbx_call_id": "out_" + "5" * 40,
                "internal": "101", "destination": CLIENT, "caller_id": TRACKING,
                "disposition": "answered", "duration": "60", "status_code": "16", "is_recorded": "0"}
    post_zadarma(client, zadarma_signed(outgoing))
    run_jobs()
    lead = lead_by_phone(api)
    assert [t["status"] for t in lead["tasks"] if t["kind"] == "callback"] == ["done"]
    assert [t["details"]["direction"] for t in lead["touches"]] == ["inbound", "outbound"]


@pytest.fixture
def sms_confirmation(telephony, config_document):
    config_document["sms"]["quiet_hours"] = None  # sent at any hour the test runs
    config_document["confirmations"].append(
        {"channel": "sms", "when": {"channel": ["sms"]}, "text": "Ваше сообщение получено. Номер заявки {number}"})


def zadarma_sms(text: str) -> tuple[dict, dict]:
    result = json.dumps({"caller_id": CLIENT, "caller_did": TRACKING, "text": text}, ensure_ascii=False)
    return zadarma_signed({"event": "SMS", "result": result})


def test_an_sms_to_a_zadarma_number_is_an_sms_lead(sms_confirmation, frozen, client, run_jobs, api, logs):
    assert post_zadarma(client, zadarma_sms("Перезвоните, пожалуйста")).status_code == 200
    run_jobs()
    lead = lead_by_phone(api)
    assert (lead["channel"], lead["message"]) == ("sms", "Перезвоните, пожалуйста")
    assert {k: lead["source"][k] for k in ("utm_source", "utm_campaign", "called_number")} == {
        "utm_source": "yandex", "utm_campaign": "brand", "called_number": "+74951234567"}  # call tracking
    [touch] = lead["touches"]
    assert (touch["channel"], touch["details"]["text"]) == ("sms", "Перезвоните, пожалуйста")
    assert [t["kind"] for t in lead["tasks"]] == ["call"]  # no missed-call ladder for an SMS
    [confirmation] = lead["notifications"]
    assert confirmation["text"] == f"Ваше сообщение получено. Номер заявки {lead['number']}"
    [logged] = [json.loads(line) for line in logs["sms"].read_text(encoding="utf-8").splitlines()]
    assert (logged["to"], logged["text"]) == ("+79161234567", confirmation["text"])


def test_a_zadarma_sms_without_a_message_id_is_never_dropped(telephony, client, run_jobs, api, hub):
    for text in ("Перезвоните", "Перезвоните"):  # the same words twice: both kept, one lead
        post_zadarma(client, zadarma_sms(text))
    run_jobs()
    lead = lead_by_phone(api)
    assert [t["details"]["text"] for t in lead["touches"]] == ["Перезвоните", "Перезвоните"]
    with hub.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 1


def test_bad_signature_stores_nothing(telephony, client, hub):
    fields, _ = zadarma_call("in_" + "6" * 40, "missed")[0]
    assert client.post("/hooks/telephony/zadarma", data=fields).status_code == 401
    assert client.post("/hooks/telephony/zadarma", data=fields, headers={"Signature": "bm9wZQ=="}).status_code == 403
    assert hub.db.file_intake() == 0
    with hub.db.read() as session:
        assert session.scalar(select(func.count()).select_from(RawEvent)) == 0


def test_zadarma_echo(telephony, client):
    response = client.get("/hooks/telephony/zadarma?zd_echo=a1B2c3")
    assert (response.status_code, response.data) == (200, b"a1B2c3")
    hostile = client.get("/hooks/telephony/zadarma?zd_echo=<script>alert(1)</script>")
    assert hostile.status_code == 401 and b"<script>" not in hostile.data  # never reflected
