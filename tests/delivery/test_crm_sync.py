"""CRM sync through the hub: exactly one lead in the CRM, throttled, retried, dead-lettered."""
from __future__ import annotations

import base64
import json
import re
import shutil
from datetime import timedelta

import pytest
import redis
import requests
import responses
from sqlalchemy import select

from hub import context
from hub.delivery import crm
from hub.delivery.replay import replay_syncs
from hub.delivery.throttle import Throttle
from hub.pipeline import process_pending
from hub.runtime import scheduler
from hub.store.db import Database, make_engine
from hub.store.models import SyncDelivery

from tests.delivery.crm_portals import LeakyBucket, VirtualClock
from tests.helpers import insert_pending_forms

WEBHOOK = "https://portal.example.bitrix24.ru/rest/1/s3cretcode/"
ADD = re.compile(re.escape(WEBHOOK) + "crm.lead.add")
LIST = re.compile(re.escape(WEBHOOK) + "crm.lead.list")


RECEIVERS = {"a": "https://a.example.com/leads", "b": "https://b.example.com/leads"}


@pytest.fixture
def two_webhooks(config_document, monkeypatch):
    monkeypatch.setenv("LEADS_WEBHOOK_SECRET", "whsec_" + base64.b64encode(b"k" * 32).decode())
    config_document["crm"] = [{"target": "webhook", "name": name, "url": url, "secret_env": "LEADS_WEBHOOK_SECRET"}
                              for name, url in RECEIVERS.items()]


@pytest.fixture
def bitrix(config_document, monkeypatch):
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", WEBHOOK)
    config_document["crm"] = [{"target": "bitrix24", "webhook_url_env": "BITRIX24_WEBHOOK_URL",
                               "team": {"anna": 17, "boris": 18}}]


class FakeBitrix:
    """A portal that enforces its leaky bucket (2 requests a second, bursts of 50) and keeps
    the leads it was given, so duplicates show."""

    def __init__(self, clock: VirtualClock):
        self.bucket = LeakyBucket(clock)
        self.leads: dict[int, dict] = {}
        self.fail_next: list[str] = []

    def admit(self) -> bool:
        return self.bucket.admit()

    @property
    def limited(self) -> int:
        return self.bucket.limited

    def add(self, request):
        if not self.admit():
            return 503, {}, json.dumps({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"})
        if self.fail_next:
            kind = self.fail_next.pop(0)
            if kind == "timeout-after-create":
                self.store(json.loads(request.body))
                raise requests.exceptions.ReadTimeout("read timed out")
            return 500, {}, json.dumps({"error": "INTERNAL_SERVER_ERROR", "error_description": "oops"})
        return 200, {}, json.dumps({"result": self.store(json.loads(request.body)), "time": {}})

    def store(self, payload) -> int:
        lead_id = len(self.leads) + 100
        self.leads[lead_id] = payload["fields"]
        return lead_id

    def find(self, request):
        if not self.admit():
            return 503, {}, json.dumps({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"})
        wanted = json.loads(request.body)["filter"]
        found = [
            {"ID": str(i)}
            for i, f in self.leads.items()
            if f.get("ORIGIN_ID") == wanted.get("ORIGIN_ID") and f.get("ORIGINATOR_ID") == wanted.get("ORIGINATOR_ID")
        ]
        return 200, {}, json.dumps({"result": found, "total": len(found)})

    def install(self, mocked):
        mocked.add_callback(responses.POST, ADD, callback=self.add, content_type="application/json")
        mocked.add_callback(responses.POST, LIST, callback=self.find, content_type="application/json")
        mocked.add_callback(
            responses.POST,
            re.compile(re.escape(WEBHOOK) + "crm.lead.update"),
            callback=lambda r: (200, {}, json.dumps({"result": True})),
        )
        mocked.add_callback(
            responses.POST,
            re.compile(re.escape(WEBHOOK) + "crm.timeline.comment.list"),
            callback=lambda r: (200, {}, json.dumps({"result": [], "total": 0})),
        )
        mocked.add_callback(
            responses.POST,
            re.compile(re.escape(WEBHOOK) + "crm.timeline.comment.add"),
            callback=lambda r: (200, {}, json.dumps({"result": 5001})),
        )


def sync_rows(hub) -> list[SyncDelivery]:
    with hub.db.read() as session:
        return list(session.scalars(select(SyncDelivery).order_by(SyncDelivery.id)))


def test_a_thousand_leads_under_the_portals_rate_limit(bitrix, hub):
    clock = VirtualClock()
    portal = FakeBitrix(clock)
    insert_pending_forms(hub, [f"+7916{i:07d}" for i in range(1000)])
    process_pending(hub)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        portal.install(mocked)
        crm.deliver_due(hub, clock=clock.time, sleep=clock.sleep)
    rows = sync_rows(hub)
    assert {row.status for row in rows} == {"synced"} and len(rows) == 1000
    assert portal.limited == 0  # the throttle kept every request inside the bucket
    origins = [fields["ORIGIN_ID"] for fields in portal.leads.values()]
    assert len(origins) == len(set(origins)) == 1000
    assert clock.now - 1_000_000.0 >= (1000 - 50) / 2.0 * 0.99  # it really waited, virtually


def test_a_timeout_after_the_crm_created_the_lead_makes_no_duplicate(bitrix, hub):
    portal = FakeBitrix(VirtualClock())
    portal.fail_next = ["timeout-after-create"]
    insert_pending_forms(hub, ["+79161234567"])
    process_pending(hub)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        portal.install(mocked)
        crm.deliver_due(hub)
        [row] = sync_rows(hub)
        assert (row.status, row.attempts) == ("failed", 1)
        later = hub.now() + timedelta(minutes=5)
        hub.clock = lambda: later
        crm.deliver_due(hub)
    [row] = sync_rows(hub)
    assert (row.status, row.external_id) == ("synced", "100")
    assert list(portal.leads) == [100]


def test_server_errors_then_success(bitrix, hub, api):
    portal = FakeBitrix(VirtualClock())
    portal.fail_next = ["500", "500"]
    insert_pending_forms(hub, ["+79161234567"])
    process_pending(hub)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        portal.install(mocked)
        for minutes in (0, 10, 30):
            moment = hub.now() + timedelta(minutes=minutes)
            hub.clock = lambda moment=moment: moment
            crm.deliver_due(hub)
    assert api.get("/api/leads/1").get_json()["sync"] == [
        {"target": "bitrix24", "external_id": "100", "status": "synced", "attempts": 0, "error": None, "readback": None}
    ]


def test_an_expired_token_is_dead_with_the_crms_message_and_replayable(config_document, monkeypatch, hub, api):
    monkeypatch.setenv("AMOCRM_TOKEN", "expired-token")
    hub.config.data["crm"] = [
        {"target": "amocrm", "base_url": "https://example.amocrm.ru", "token_env": "AMOCRM_TOKEN"}
    ]
    insert_pending_forms(hub, ["+79161234567"])
    process_pending(hub)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(
            responses.POST,
            "https://example.amocrm.ru/api/v4/leads/complex",
            status=401,
            json={"title": "Unauthorized", "status": 401, "detail": "Token has expired"},
        )
        crm.deliver_due(hub)
    [sync] = api.get("/api/leads/1").get_json()["sync"]
    assert sync["status"] == "dead" and "token rejected" in sync["error"]
    assert replay_syncs(hub) == 1
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(
            responses.POST,
            "https://example.amocrm.ru/api/v4/leads/complex",
            status=200,
            json=[{"id": 777, "contact_id": 1, "request_id": ["0"], "merged": False}],
        )
        mocked.add(responses.POST, re.compile(r"https://example.amocrm.ru/api/v4/leads/777/notes"), json={})
        crm.deliver_due(hub)
    assert api.get("/api/leads/1").get_json()["sync"][0]["external_id"] == "777"


def test_a_target_down_for_an_hour_loses_nothing(bitrix, hub):
    insert_pending_forms(hub, ["+79161234567"])
    process_pending(hub)
    start = hub.now()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add(responses.POST, ADD, body=requests.exceptions.ConnectionError("portal down"))
        mocked.add(responses.POST, LIST, body=requests.exceptions.ConnectionError("portal down"))
        minute = 0
        while minute < 60:
            moment = start + timedelta(minutes=minute)
            hub.clock = lambda moment=moment: moment
            crm.deliver_due(hub)
            minute += 1
    [row] = sync_rows(hub)
    assert row.status == "failed" and row.attempts >= 5
    portal = FakeBitrix(VirtualClock())
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        portal.install(mocked)
        moment = start + timedelta(hours=3)
        hub.clock = lambda: moment
        crm.deliver_due(hub)
    assert sync_rows(hub)[0].status == "synced" and len(portal.leads) == 1


def test_a_new_touch_is_pushed_as_an_update(bitrix, hub, client, run_jobs):
    portal = FakeBitrix(VirtualClock())
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        portal.install(mocked)
        client.post("/hooks/forms/landing", data={"phone": "+79161234567"})
        run_jobs()
        client.post("/hooks/forms/landing", data={"phone": "+79161234567", "message": "again"})
        run_jobs()
        updates = [c.request.url for c in mocked.calls if "timeline.comment.add" in c.request.url]
    assert len(portal.leads) == 1 and len(updates) == 1
    [row] = sync_rows(hub)
    assert (row.status, row.external_id) == ("synced", "100")


def test_the_throttle_is_shared_by_every_worker(redis_client):
    clock = VirtualClock()
    first = Throttle(redis_client, "shared", 2.0, 5, clock=clock.time, sleep=clock.sleep)
    second = Throttle(
        redis.Redis(connection_pool=redis_client.connection_pool), "shared", 2.0, 5, clock=clock.time, sleep=clock.sleep
    )
    for _ in range(5):
        first()
    assert first.waited == 0
    second()  # the burst is spent, by the other worker
    assert second.waited == pytest.approx(0.5)


def test_scheduler_retries_stuck_rows(bitrix, hub):
    insert_pending_forms(hub, ["+79161234567"])
    process_pending(hub)
    crm.claim_due(hub)  # a worker took it, then died
    moment = hub.now() + timedelta(minutes=11)
    hub.clock = lambda: moment
    assert scheduler.tick(hub)["sync_stuck"] == 1
    assert sync_rows(hub)[0].status == "failed"


def pushed_ids(hub, answers: dict[str, list[int]]) -> dict[str, list[str]]:
    """Runs the due pushes, every receiver answering in turn; the webhook-ids each one got."""
    with responses.RequestsMock() as receivers:
        for name, statuses in answers.items():
            for status in statuses:
                receivers.add(responses.POST, RECEIVERS[name], status=status)
        for _ in range(max(len(statuses) for statuses in answers.values())):
            moment = hub.now() + timedelta(minutes=5)  # past the backoff of a failed try
            hub.clock = lambda moment=moment: moment
            crm.deliver_due(hub)
        return {
            name: [c.request.headers["webhook-id"] for c in receivers.calls if c.request.url == url]
            for name, url in RECEIVERS.items()
        }


def test_webhook_ids_name_one_push_to_one_target_in_one_database(two_webhooks, hub, api, migrated_sqlite, tmp_path):
    insert_pending_forms(hub, ["+79161234567"])
    process_pending(hub)
    created = pushed_ids(hub, {"a": [503, 204], "b": [204]})
    assert created["a"][0] == created["a"][1]  # a retry is the same delivery: the same id
    assert created["a"][0] != created["b"][0]  # one lead, two targets: two deliveries
    assert api.patch("/api/leads/1", json={"status": "in_progress"}).status_code == 200
    updated = pushed_ids(hub, {"a": [204], "b": [204]})
    path = tmp_path / "fresh.db"
    shutil.copy(migrated_sqlite, path)
    fresh = context.Hub(config=hub.config, db=Database(make_engine(f"sqlite:///{path}")), kicker=hub.kicker)
    insert_pending_forms(fresh, ["+79161234567"])
    process_pending(fresh)
    elsewhere = pushed_ids(fresh, {"a": [204], "b": [204]})
    fresh.db.dispose()
    ids = [webhook_id for pushes in (created, updated, elsewhere) for name in RECEIVERS for webhook_id in pushes[name]]
    assert len(ids) == 7 and len(set(ids)) == 6  # seven requests, six deliveries: only the retry repeats
    assert all(webhook_id.startswith("lead-1-") for webhook_id in ids)  # lead 1 in either database
