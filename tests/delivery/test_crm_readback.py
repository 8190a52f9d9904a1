"""What managers do in Bitrix24 or amoCRM reaches the hub: webhooks on the intake spine, the
lead read back through the shared throttle, polling for what webhooks lose, echoes of the
hub's own pushes told apart, all on a fixed clock against fake CRMs (``crm_portals``)."""
from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest
import redis
import responses
from click.testing import CliRunner
from sqlalchemy import func, select, update

from hub import context
from hub.config import ConfigError, load_config
from hub.delivery import crm, crm_readback
from hub.delivery.replay import replay_events
from hub.pipeline import process_pending
from hub.runtime.cli import main
from hub.store.db import Database, make_engine
from hub.store.models import Checkpoint, Lead, LeadHistory, Notification, RawEvent, SyncDelivery
from hub.store.queue import Kicker

from tests.delivery.crm_portals import (
    AMO,
    FORM,
    SECRET,
    START,
    TOKEN,
    WEBHOOK,
    FakeBitrix24,
    LeakyBucket,
    VirtualClock,
)
from tests.helpers import ZADARMA_SECRET, Clock, insert_pending_forms, post_zadarma, zadarma_call


@pytest.fixture
def bitrix(config_document, monkeypatch):
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", WEBHOOK)
    monkeypatch.setenv("BITRIX24_APP_TOKEN", TOKEN)
    config_document["public_url"] = "https://hub.example.com"
    config_document["crm"] = [{"target": "bitrix24", "webhook_url_env": "BITRIX24_WEBHOOK_URL",
                               "application_token_env": "BITRIX24_APP_TOKEN", "team": {"anna": 17, "boris": 18}}]


@pytest.fixture
def amo(config_document, monkeypatch):
    monkeypatch.setenv("AMOCRM_TOKEN", "long-lived-token")
    monkeypatch.setenv("AMOCRM_HOOK_SECRET", SECRET)
    config_document["public_url"] = "https://hub.example.com"
    config_document["crm"] = [{"target": "amocrm", "base_url": AMO, "token_env": "AMOCRM_TOKEN",
                               "hook_secret_env": "AMOCRM_HOOK_SECRET", "account_id": 31234567,
                               "team": {"anna": 7010001, "boris": 7010002}}]


@pytest.fixture
def clock(hub):
    return Clock(hub, START)


def new_lead(client, run_jobs, api, phone: str = "+79161234567") -> dict:
    response = client.post("/hooks/forms/landing", data={"name": "Ivan", "phone": phone})
    run_jobs()
    event = api.get(f"/api/events/{response.get_json()['event_id']}").get_json()
    return api.get(f"/api/leads/{event['lead_number']}").get_json()


def crm_post(client, path: str, body: bytes):
    return client.post(f"/hooks/crm/{path}", data=body, content_type=FORM)


def notifications(hub, prefix: str) -> list[Notification]:
    with hub.db.read() as session:
        return list(session.scalars(select(Notification).where(Notification.rule.startswith(prefix))))


def by_crm(lead: dict) -> list[tuple]:
    return [(h["actor"], h["action"], h["details"]) for h in lead["history"] if h["actor"].startswith("crm:")]


def hours_pass(clock, run_jobs, start: datetime, hours: int) -> None:
    for hour in range(1, hours + 1):
        clock.at(start + timedelta(hours=hour))
        run_jobs()


def crm_events(hub) -> list[RawEvent]:
    hub.db.file_intake()  # on SQLite, from the intake journal into raw_events
    with hub.db.read() as session:
        return list(session.scalars(select(RawEvent).where(RawEvent.kind == "crm").order_by(RawEvent.id)))


def test_a_status_change_in_bitrix24_an_hour_in_stops_reminders_and_escalations(portal, clock, client, run_jobs,
                                                                                 api, hub):
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = portal.leads
    clock.now = START + timedelta(hours=1)
    portal.manager_changes(crm_id, by=17, at=clock.now, STATUS_ID="IN_PROCESS")
    response = crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", crm_id, TOKEN))
    assert response.status_code == 202 and response.headers["X-Hub-Event-Id"]
    run_jobs()
    hours_pass(clock, run_jobs, clock.now, 48)
    assert notifications(hub, "reminder:") == [] and notifications(hub, "escalation:") == []
    lead = api.get(f"/api/leads/{number}").get_json()
    assert (lead["status"], lead["handled_at"]) == ("in_progress", "2026-11-23T11:00:00+00:00")
    assert [(t["kind"], t["status"], t["outcome"]) for t in lead["tasks"]] == [("call", "done", "crm:IN_PROCESS")]
    assert [h["action"] for h in lead["history"]] == ["created", "assigned", "status_changed", "task_done"]
    assert by_crm(lead)[0] == ("crm:bitrix24 user 17 (anna)", "status_changed", {"from": "new", "to": "in_progress"})
    readback = lead["sync"][0]["readback"]
    assert {k: readback[k] for k in ("status", "semantic", "user", "hub_status", "assignee", "outcome", "via")} == {
        "status": "IN_PROCESS", "semantic": "process", "user": "17", "hub_status": "in_progress",
        "assignee": "anna", "outcome": "applied", "via": "webhook"}
    assert readback["modified_at"] == "2026-11-23T11:00:00+00:00"
    assert portal.calls["crm.lead.get"] == 1 and portal.calls["crm.lead.update"] == 0  # not pushed back


@pytest.mark.parametrize("stage,status", [(142, "converted"), (143, "junk")])
def test_amocrm_won_or_lost_an_hour_in_stops_everything(stage, status, account, clock, client, run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = account.leads
    clock.now = START + timedelta(hours=1)
    account.manager_changes(crm_id, by=7010001, at=clock.now, status_id=stage)
    response = crm_post(client, f"amocrm?secret={SECRET}", account.webhook("status", crm_id))
    assert response.status_code == 202
    run_jobs()
    hours_pass(clock, run_jobs, clock.now, 48)
    assert notifications(hub, "reminder:") == [] and notifications(hub, "escalation:") == []
    lead = api.get(f"/api/leads/{number}").get_json()
    assert lead["status"] == status and lead["tasks"][0]["outcome"] == f"crm:{stage}"
    assert by_crm(lead)[0] == ("crm:amocrm user 7010001 (anna)", "status_changed", {"from": "new", "to": status})
    assert account.calls["GET get"] == 0  # the webhook carried the lead: nothing to read back
    assert account.calls["PATCH patch"] == 0
    [raw] = crm_events(hub)
    assert SECRET not in raw.url and raw.query == [] and raw.status == "processed"


RECEIVER = "https://example.com/leads"


@pytest.fixture
def with_a_webhook_target(bitrix, config_document, monkeypatch):
    monkeypatch.setenv("LEADS_WEBHOOK_SECRET", "whsec_" + "a2V5" * 8)
    config_document["crm"].append({"target": "webhook", "url": RECEIVER, "secret_env": "LEADS_WEBHOOK_SECRET"})


def test_a_crm_change_goes_out_to_the_other_targets_only(with_a_webhook_target, clock, client, run_jobs, api):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        portal = FakeBitrix24(WEBHOOK, clock.hub.now).install(mocked)
        mocked.add(responses.POST, RECEIVER, status=204)
        number = new_lead(client, run_jobs, api)["number"]
        [crm_id] = portal.leads
        clock.now = START + timedelta(minutes=15)
        portal.manager_changes(crm_id, by=17, at=clock.now, STATUS_ID="CONVERTED")
        crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", crm_id, TOKEN))
        run_jobs()
        pushed = [json.loads(call.request.body) for call in mocked.calls if call.request.url == RECEIVER]
    assert [lead["status"] for lead in pushed] == ["new", "converted"]  # created, then the CRM's change
    assert portal.calls["crm.lead.update"] == 0  # not back to the CRM it came from
    assert api.get(f"/api/leads/{number}").get_json()["status"] == "converted"


def test_a_crm_status_change_stops_the_callback_ladder(bitrix, config_document, monkeypatch, portal, clock, client,
                                                      run_jobs, api, hub):
    monkeypatch.setenv("ZADARMA_SECRET", ZADARMA_SECRET)
    hub.config.data["telephony"] = {"zadarma": {"secret_env": "ZADARMA_SECRET"}}
    for event in zadarma_call("in_" + "c" * 40, "missed"):
        post_zadarma(client, event)
    run_jobs()
    [crm_id] = portal.leads
    clock.now = START + timedelta(minutes=3)
    portal.manager_changes(crm_id, by=18, at=clock.now, STATUS_ID="IN_PROCESS")
    crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", crm_id, TOKEN))
    run_jobs()
    hours_pass(clock, run_jobs, clock.now, 30)
    lead = api.get("/api/leads/1").get_json()
    assert lead["status"] == "in_progress"  # never archived by the ladder
    assert [(t["kind"], t["status"], t["outcome"]) for t in lead["tasks"]] == [
        ("call", "done", "crm:IN_PROCESS"), ("callback", "done", "crm:IN_PROCESS")]
    assert "callback_ladder_stopped" in [h["action"] for h in lead["history"]]


def test_a_crm_status_change_starts_that_stages_limit(portal, clock, client, run_jobs, api, hub):
    hub.config["sla"]["stage_limits"] = {"in_progress": timedelta(days=3)}
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = portal.leads
    clock.now = START + timedelta(hours=1)
    portal.manager_changes(crm_id, by=17, at=clock.now, STATUS_ID="IN_PROCESS")
    crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", crm_id, TOKEN))
    run_jobs()
    clock.at(START + timedelta(days=3, minutes=59))
    assert notifications(hub, "escalation:") == []
    clock.at(START + timedelta(days=3, hours=1))
    [stuck] = notifications(hub, "escalation:")
    assert stuck.subject == f"Lead {number} is in_progress longer than 3d: move it on"


def test_an_assignee_changed_in_the_crm_moves_the_lead_and_its_open_task(portal, clock, client, run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = portal.leads
    clock.now = START + timedelta(minutes=30)
    portal.manager_changes(crm_id, by=30, at=clock.now, ASSIGNED_BY_ID=18)  # the head, unknown to the hub
    crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", crm_id, TOKEN))
    run_jobs()
    lead = api.get(f"/api/leads/{number}").get_json()
    assert (lead["status"], lead["assignee"]["id"]) == ("new", "boris")
    assert lead["assignment_reason"] == "reassigned to boris by crm:bitrix24 user 30"
    assert [(t["kind"], t["status"], t["assignee"]) for t in lead["tasks"]] == [("call", "open", "boris")]
    assert by_crm(lead) == [("crm:bitrix24 user 30", "reassigned", {"from": "anna", "to": "boris"})]
    clock.at(START + timedelta(hours=1))
    assert [n.to for n in notifications(hub, "reminder:")] == ["boris@example.com"]  # the task follows boris
    assert notifications(hub, "escalation:") == []  # somebody acted


def test_an_unmapped_stage_or_user_is_recorded_never_guessed(portal, clock, client, run_jobs, api, caplog):
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = portal.leads
    clock.now = START + timedelta(minutes=20)
    portal.manager_changes(crm_id, by=17, at=clock.now, STATUS_ID="UC_7Q2K1D", ASSIGNED_BY_ID=25)
    crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", crm_id, TOKEN))
    run_jobs()
    lead = api.get(f"/api/leads/{number}").get_json()
    assert (lead["status"], lead["assignee"]["id"]) == ("new", "anna")
    assert by_crm(lead) == [("crm:bitrix24 user 17 (anna)", "crm_unmapped",
                             {"target": "bitrix24", "status": "UC_7Q2K1D", "user": "25"}),
                            ("crm:bitrix24 user 17 (anna)", "handled", {})]  # a manager did act
    readback = lead["sync"][0]["readback"]
    assert (readback["hub_status"], readback["assignee"], readback["outcome"]) == (None, None, "applied")
    assert "crm:bitrix24 sent status UC_7Q2K1D, user 25, which the config does not map" in caplog.text


def test_a_lead_deleted_in_bitrix24_is_archived_and_never_pushed_again(portal, clock, client, run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = portal.leads
    clock.now = START + timedelta(minutes=10)
    portal.delete(crm_id)
    crm_post(client, "bitrix24", portal.event("ONCRMLEADDELETE", crm_id, TOKEN))
    run_jobs()
    lead = api.get(f"/api/leads/{number}").get_json()
    assert lead["status"] == "archived" and lead["sync"][0]["status"] == "deleted"
    assert by_crm(lead)[0] == ("crm:bitrix24", "status_changed",
                               {"from": "new", "to": "archived", "reason": "deleted in crm:bitrix24"})
    assert lead["tasks"][0]["outcome"] == "deleted in crm:bitrix24"
    api.patch(f"/api/leads/{number}", json={"assignee": "boris"})
    run_jobs()
    hours_pass(clock, run_jobs, clock.now, 3)
    assert portal.calls["crm.lead.get"] == 0 and portal.calls["crm.lead.update"] == 0
    assert notifications(hub, "reminder:") == [] and notifications(hub, "escalation:") == []


def test_a_lead_deleted_in_amocrm_is_archived(account, clock, client, run_jobs, api):
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = account.leads
    assert crm_post(client, f"amocrm?secret={SECRET}", account.delete(crm_id)).status_code == 202
    run_jobs()
    lead = api.get(f"/api/leads/{number}").get_json()
    assert (lead["status"], lead["sync"][0]["status"]) == ("archived", "deleted")
    assert lead["sync"][0]["readback"]["deleted"] is True


def test_the_hubs_own_update_echoed_back_is_no_manager_action(portal, clock, client, run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = portal.leads
    clock.now = START + timedelta(minutes=10)
    client.post("/hooks/forms/landing", data={"phone": "+79161234567", "message": "and delivery?"})
    run_jobs()  # a second touch: the hub pushes it as a timeline comment; status and owner did not move
    assert portal.calls["crm.lead.update"] == 0 and portal.calls["crm.timeline.comment.add"] == 1
    clock.now = START + timedelta(minutes=11)  # Bitrix24's queue delivers the event a minute later
    crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", crm_id, TOKEN))
    run_jobs()
    lead = api.get(f"/api/leads/{number}").get_json()
    assert lead["handled_at"] is None and lead["tasks"][0]["status"] == "open" and by_crm(lead) == []
    assert lead["sync"][0]["status"] == "synced" and lead["sync"][0]["readback"]["outcome"] == "echo"
    assert portal.calls["crm.lead.update"] == 0  # not pushed out again
    clock.at(START + timedelta(hours=1))
    assert [n.to for n in notifications(hub, "escalation:")] == ["vera@example.com"]  # nobody acted


def test_the_hubs_next_push_never_overwrites_a_change_not_yet_read_back(portal, clock, client, run_jobs, api):
    """A manager moves the lead in Bitrix24; before the hub hears of it, the client writes
    again and the hub pushes the new touch. Only what moved in the hub goes out."""
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = portal.leads
    portal.manager_changes(crm_id, by=17, at=START + timedelta(minutes=5), STATUS_ID="IN_PROCESS")
    clock.now = START + timedelta(minutes=6)
    client.post("/hooks/forms/landing", data={"phone": "+79161234567", "message": "and delivery?"})
    run_jobs()
    assert portal.leads[crm_id]["STATUS_ID"] == "IN_PROCESS" and portal.calls["crm.lead.update"] == 0
    api.patch(f"/api/leads/{number}", json={"assignee": "boris"})  # the owner moved in the hub: that goes
    run_jobs()
    assert (portal.leads[crm_id]["STATUS_ID"], portal.leads[crm_id]["ASSIGNED_BY_ID"]) == ("IN_PROCESS", 18)


def test_a_managers_change_right_after_the_push_is_no_echo(portal, clock, client, run_jobs, api):
    """Within the echo window of the hub's create, a stage the hub never had is the manager's."""
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = portal.leads
    portal.manager_changes(crm_id, by=17, at=START + timedelta(seconds=40), STATUS_ID="IN_PROCESS")
    clock.now = START + timedelta(minutes=1)
    crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", crm_id, TOKEN))
    run_jobs()
    lead = api.get(f"/api/leads/{number}").get_json()
    assert lead["sync"][0]["readback"]["outcome"] == "applied"
    assert lead["status"] == "in_progress" and lead["handled_at"] is not None


def test_an_api_change_echoed_back_is_not_applied_twice(portal, clock, client, run_jobs, api):
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = portal.leads
    api.patch(f"/api/leads/{number}", json={"status": "in_progress", "assignee": "boris"})
    run_jobs()
    assert (portal.leads[crm_id]["STATUS_ID"], portal.leads[crm_id]["ASSIGNED_BY_ID"]) == ("IN_PROCESS", 18)
    crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", crm_id, TOKEN))
    run_jobs()
    lead = api.get(f"/api/leads/{number}").get_json()
    assert lead["sync"][0]["readback"]["outcome"] == "echo" and by_crm(lead) == []
    assert [h["actor"] for h in lead["history"] if h["action"] == "status_changed"] == ["api"]
    assert portal.calls["crm.lead.update"] == 1


@pytest.mark.parametrize("body", [
    {"auth[application_token]": "x" * 32}, {"auth[application_token]": ""}])
def test_a_wrong_bitrix24_token_is_403_and_changes_nothing(body, portal, client, run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = portal.leads
    portal.manager_changes(crm_id, by=17, at=START, STATUS_ID="JUNK")
    forged = portal.event("ONCRMLEADUPDATE", crm_id, body["auth[application_token]"])
    response = crm_post(client, "bitrix24", forged)
    assert response.status_code == 403 and response.get_json()["fields"] == {"auth[application_token]": "invalid"}
    run_jobs()
    assert crm_events(hub) == [] and portal.calls["crm.lead.get"] == 0
    assert api.get(f"/api/leads/{number}").get_json()["status"] == "new"


@pytest.mark.parametrize("path,account_id,field", [
    (f"amocrm?secret={'x' * 32}", None, "secret"), ("amocrm", None, "secret"),
    (f"amocrm?secret={SECRET}", 99999999, "account[id]")])
def test_a_wrong_amocrm_secret_or_account_is_403_and_changes_nothing(path, account_id, field, account, client,
                                                                     run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = account.leads
    account.manager_changes(crm_id, by=7010001, at=START, status_id=143)
    response = crm_post(client, path, account.webhook("status", crm_id, account_id))
    assert response.status_code == 403 and field in response.get_json()["fields"]
    run_jobs()
    assert crm_events(hub) == [] and api.get(f"/api/leads/{number}").get_json()["status"] == "new"


def test_unknown_targets_and_leads_the_hub_did_not_push(portal, client, run_jobs, hub):
    assert crm_post(client, "nosuch", b"event=ONCRMLEADUPDATE").status_code == 404
    response = crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", "9999", TOKEN))
    assert response.status_code == 202
    added = crm_post(client, "bitrix24", portal.event("ONCRMLEADADD", "9998", TOKEN))
    assert added.status_code == 202
    run_jobs()
    update_event, add_event = crm_events(hub)
    assert (update_event.status, update_event.error) == ("ignored", "CRM lead 9999: not a lead the hub pushed")
    assert add_event.status == "ignored" and add_event.error.startswith("a lead added in the CRM")
    assert portal.calls["crm.lead.get"] == 0
    again = crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", "9999", TOKEN))
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"


def test_a_webhook_that_never_came_is_caught_by_the_next_poll(portal, clock, client, run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = portal.leads
    clock.at(START)  # the first poll: the lead as the hub created it, an echo
    run_jobs()
    assert api.get(f"/api/leads/{number}").get_json()["sync"][0]["readback"]["outcome"] == "echo"
    portal.manager_changes(crm_id, by=17, at=START + timedelta(minutes=30), STATUS_ID="CONVERTED")
    clock.at(START + timedelta(minutes=31))  # no webhook: Bitrix24 dropped it
    run_jobs()
    lead = api.get(f"/api/leads/{number}").get_json()
    assert lead["status"] == "converted" and lead["sync"][0]["readback"]["via"] == "poll"
    assert by_crm(lead)[0] == ("crm:bitrix24 user 17 (anna)", "status_changed", {"from": "new", "to": "converted"})
    with hub.db.read() as session:
        checkpoint = session.scalar(select(Checkpoint).where(Checkpoint.source == "crm:bitrix24"))
    assert checkpoint.last_uid == int((START + timedelta(minutes=30)).timestamp())
    assert checkpoint.last_success_at == START + timedelta(minutes=31) and checkpoint.consecutive_errors == 0


@pytest.mark.parametrize("first", ["webhook", "poll"])
def test_a_webhook_and_a_poll_with_the_same_change_apply_it_once(first, portal, clock, client, run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = portal.leads
    clock.at(START)
    run_jobs()
    portal.manager_changes(crm_id, by=17, at=START + timedelta(minutes=20), STATUS_ID="IN_PROCESS")
    deliveries = {"webhook": lambda: crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", crm_id, TOKEN)),
                  "poll": lambda: clock.at(START + timedelta(minutes=21))}
    for way in (first, "poll" if first == "webhook" else "webhook"):
        deliveries[way]()
        run_jobs()
    lead = api.get(f"/api/leads/{number}").get_json()
    assert [action for _, action, _ in by_crm(lead)] == ["status_changed", "task_done"]
    assert lead["sync"][0]["readback"]["via"] == first
    [raw] = crm_events(hub)
    assert (raw.status, raw.lead_id) == ("processed", number)
    assert replay_events(hub, event_id=raw.event_id) == [f"{raw.event_id} processed lead {number}"]
    assert len(by_crm(api.get(f"/api/leads/{number}").get_json())) == 2  # a replay applies nothing twice


def synced_leads(hub, count: int) -> dict[int, str]:
    """``count`` leads already pushed to the portal (lead number -> Bitrix24 id)."""
    insert_pending_forms(hub, [f"+7925{i:07d}" for i in range(count)])
    process_pending(hub)
    with hub.db.write() as session:
        rows = list(session.scalars(select(SyncDelivery)))
        for row in rows:
            row.status, row.external_id, row.synced_at = "synced", str(5000 + row.lead_id), START
            row.pushed = {"status": None, "user": None, "at": START.isoformat()}
        return {row.lead_id: row.external_id for row in rows}


def test_a_thousand_crm_changes_over_two_workers_apply_once_each(bitrix, config_document, clock, client, hub,
                                                                 database_url, redis_url):
    hub.config.data["crm"][0]["rate"] = {"per_second": 1000.0, "burst": 1000.0}
    leads = synced_leads(hub, 1000)
    portal = FakeBitrix24(WEBHOOK, clock.hub.now)
    changed_at = START + timedelta(hours=1)
    for number, crm_id in leads.items():
        portal.leads[crm_id] = {"ID": crm_id, "STATUS_ID": "NEW", "ASSIGNED_BY_ID": 17, "MODIFY_BY_ID": "1",
                                "ORIGINATOR_ID": "lead-hub", "ORIGIN_ID": str(number)}
        portal.manager_changes(crm_id, by=17 + number % 2, at=changed_at, STATUS_ID="IN_PROCESS")
    clock.now = changed_at
    for crm_id in leads.values():
        assert crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", crm_id, TOKEN)).status_code == 202
    workers = [context.Hub(config=hub.config, db=Database(make_engine(database_url)), clock=hub.clock,
                           kicker=Kicker(lambda: redis.Redis.from_url(redis_url))) for _ in range(2)]
    taken = []
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        portal.install(mocked)
        threads = [threading.Thread(target=lambda w=w: taken.append(crm_readback.drain(w, limit=10))) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert crm_readback.poll_due(hub) == 0  # the poll finds the same 1,000 changes: applied already
    for worker in workers:
        worker.db.dispose()
    with hub.db.read() as session:
        changed = Counter(session.scalars(select(LeadHistory.lead_id).where(LeadHistory.action == "status_changed")))
        done = Counter(session.scalars(select(LeadHistory.lead_id).where(LeadHistory.action == "task_done")))
        statuses = Counter(session.scalars(select(Lead.status)))
        events = Counter(session.scalars(select(RawEvent.status).where(RawEvent.kind == "crm")))
    assert len(taken) == 2 and all(taken) and sum(taken) == 1000  # both workers had a share
    assert set(changed) == set(leads) and set(changed.values()) == set(done.values()) == {1}
    assert statuses == {"in_progress": 1000} and events == {"processed": 1000}
    assert portal.calls["crm.lead.get"] == 1000 and portal.calls["crm.lead.list"] == 20


def test_read_backs_and_pushes_share_one_throttle(bitrix, clock, client, run_jobs, hub):
    virtual = VirtualClock()
    bucket = LeakyBucket(virtual)
    portal = FakeBitrix24(WEBHOOK, clock.hub.now, bucket)
    insert_pending_forms(hub, [f"+7926{i:07d}" for i in range(120)])
    process_pending(hub)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        portal.install(mocked)
        crm.deliver_due(hub, clock=virtual.time, sleep=virtual.sleep)  # the burst is spent here
        clock.now = START + timedelta(minutes=5)
        for crm_id in list(portal.leads):
            portal.manager_changes(crm_id, by=18, at=clock.now, STATUS_ID="IN_PROCESS")
            crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", crm_id, TOKEN))
        insert_pending_forms(hub, [f"+7927{i:07d}" for i in range(60)])
        process_pending(hub)
        crm_readback.drain(hub, clock=virtual.time, sleep=virtual.sleep)
        crm.deliver_due(hub, clock=virtual.time, sleep=virtual.sleep)
    assert portal.calls["crm.lead.add"] == 180 and portal.calls["crm.lead.get"] == 120
    assert bucket.limited == 0  # not one QUERY_LIMIT_EXCEEDED
    assert virtual.now - 1_000_000.0 >= (180 + 120 - 50) / 2.0 * 0.99  # one bucket, really waited for
    with hub.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Lead).where(Lead.status == "in_progress")) == 120


def test_a_read_back_the_crm_refuses_is_retried(portal, clock, client, run_jobs, api, hub):
    new_lead(client, run_jobs, api)
    [crm_id] = portal.leads
    crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", crm_id, TOKEN))
    portal.bucket = LeakyBucket(VirtualClock(), burst=0)  # the portal refuses everything now
    run_jobs()
    [raw] = crm_events(hub)
    assert raw.status == "failed" and "QUERY_LIMIT_EXCEEDED" in raw.error and "s3cretcode" not in raw.error
    portal.bucket = None
    clock.at(raw.retry_at)  # the sweeper puts it back in line, the worker reads it back
    run_jobs()
    assert crm_events(hub)[0].status == "processed"


def test_an_event_during_a_push_in_flight_waits_for_it(portal, clock, client, run_jobs, api, hub):
    number = new_lead(client, run_jobs, api)["number"]
    [crm_id] = portal.leads
    with hub.db.write() as session:
        session.execute(update(SyncDelivery).values(status="syncing"))
    crm_post(client, "bitrix24", portal.event("ONCRMLEADUPDATE", crm_id, TOKEN))
    run_jobs()
    [raw] = crm_events(hub)
    assert raw.status == "pending" and raw.retry_at == START + crm_readback.DEFER
    with hub.db.write() as session:
        session.execute(update(SyncDelivery).values(status="synced"))
    clock.at(START + crm_readback.DEFER)
    run_jobs()
    assert crm_events(hub)[0].status == "processed"
    assert api.get(f"/api/leads/{number}").get_json()["sync"][0]["readback"]["outcome"] == "echo"


def test_hub_crm_connect_for_bitrix24_says_what_to_paste(portal, hub):
    result = CliRunner().invoke(main, ["crm", "connect", "bitrix24"])
    assert result.exit_code == 0, result.output
    assert portal.calls["event.bind"] == 1  # refused: an incoming webhook cannot bind handlers
    assert "  handler URL: https://hub.example.com/hooks/crm/bitrix24" in result.output.splitlines()
    assert "ONCRMLEADUPDATE, ONCRMLEADDELETE" in result.output and TOKEN not in result.output
    unknown = CliRunner().invoke(main, ["crm", "connect", "bitrix"])
    assert unknown.exit_code == 1 and "no CRM target 'bitrix'" in unknown.output and "bitrix24" in unknown.output


def test_hub_crm_connect_for_amocrm_prints_the_url_with_its_secret(amo, hub):
    result = CliRunner().invoke(main, ["crm", "connect", "amocrm"])
    assert result.exit_code == 0, result.output
    assert f"  URL: https://hub.example.com/hooks/crm/amocrm?secret={SECRET}" in result.output.splitlines()
    hub.config.data["public_url"] = None
    unset = CliRunner().invoke(main, ["crm", "connect", "amocrm"])
    assert unset.exit_code == 1 and "set public_url" in unset.output


def test_check_config_wants_every_key_receiving_needs(config_document, monkeypatch):
    monkeypatch.setenv("AMOCRM_TOKEN", "t")
    monkeypatch.setenv("AMOCRM_HOOK_SECRET", SECRET)
    config_document["crm"] = [{"target": "amocrm", "base_url": AMO, "token_env": "AMOCRM_TOKEN",
                               "hook_secret_env": "AMOCRM_HOOK_SECRET", "poll_every": "never"}]
    with pytest.raises(ConfigError) as error:
        load_config(document=config_document)
    assert sorted(error.value.problems) == [
        "crm.0.account_id: required to receive events (hook_secret_env is set)",
        "crm.0.poll_every: not a duration: 'never' (write it as 90s, 5m, 1h or 2d)"]
