"""Failing dependencies: nothing accepted is lost, nothing becomes a lead twice."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import redis
import yaml
from rq import Queue, SimpleWorker
from sqlalchemy import func, select

from hub.runtime import scheduler
from hub.store.models import Lead, Notification, RawEvent, Touch
from hub.store.queue import QUEUE_NAME, Kicker

from tests.helpers import insert_pending_forms, wait_for


def counts(hub) -> dict:
    with hub.db.read() as session:
        statuses = dict(session.execute(select(RawEvent.status, func.count()).group_by(RawEvent.status)).all())
        leads = session.scalar(select(func.count()).select_from(Lead))
        touches = session.scalar(select(func.count()).select_from(Touch))
        phones = session.scalar(select(func.count(func.distinct(Lead.phone))))
    return {"events": statuses, "leads": leads, "touches": touches, "distinct_phones": phones}


def drain(url: str) -> None:
    connection = redis.Redis.from_url(url)
    SimpleWorker([Queue(QUEUE_NAME, connection=connection)], connection=connection).work(
        burst=True, with_scheduler=False)


def test_redis_down_at_intake_loses_nothing(hub, client, redis_server):
    hub.kicker = Kicker(lambda: redis.Redis.from_url(redis_server.url, socket_connect_timeout=0.5))
    redis_server.stop()
    answers = Counter(client.post("/hooks/forms/landing", data={"phone": f"+7916555{i:04d}"}).status_code
                      for i in range(100))
    assert answers == {202: 100}
    unfiled = hub.db.journal.backlog() if hub.db.journal else 0  # SQLite: in the intake journal
    assert unfiled + counts(hub)["events"].get("pending", 0) == 100

    redis_server.start()
    hub.kicker.breaker.reset()
    later = hub.now() + timedelta(seconds=30)
    hub.clock = lambda: later
    assert scheduler.tick(hub)["pipeline"] is True  # the sweeper finds the stale backlog
    drain(redis_server.url)
    assert counts(hub) == {"events": {"processed": 100}, "leads": 100, "touches": 100,
                           "distinct_phones": 100}


def start_worker(config_path, database_url, redis_url, env_extra) -> subprocess.Popen:
    env = {**os.environ, "HUB_CONFIG": str(config_path), "DATABASE_URL": database_url,
           "REDIS_URL": redis_url, **env_extra}
    return subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_worker_killed_mid_backlog_then_restarted(hub, config_document, database_url, redis_server,
                                                   tmp_path, logs):
    config_document["pipeline"] = {"batch_size": 100}
    config_document["sms"]["quiet_hours"] = None  # every SMS goes now, whatever the hour
    config_path = tmp_path / "hub.yaml"
    config_path.write_text(yaml.safe_dump(config_document, allow_unicode=True), encoding="utf-8")
    phones = [f"+7926{i:07d}" for i in range(4000)] + [f"+7926{i:07d}" for i in range(0, 4000, 40)]
    insert_pending_forms(hub, phones)
    env = {"HUB_SMS_LOG": str(logs["sms"]), "HUB_MAIL_LOG": str(logs["mail"])}

    worker = start_worker(config_path, database_url, redis_server.url, env)
    assert wait_for(lambda: counts(hub)["events"].get("processed", 0) > 0, timeout=60, interval=0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    partial = counts(hub)
    assert partial["events"].get("pending", 0) > 0, "the backlog finished before the kill"
    assert partial["events"]["processed"] % 100 == 0  # batches commit whole or not at all

    worker = start_worker(config_path, database_url, redis_server.url, env)
    try:
        assert wait_for(lambda: counts(hub)["events"] == {"processed": len(phones)}, timeout=120, interval=0.02)
        assert wait_for(lambda: not outbox_busy(hub), timeout=60, interval=0.02)
    finally:
        worker.terminate()
        worker.wait(timeout=10)
    final = counts(hub)
    assert (final["leads"], final["distinct_phones"], final["touches"]) == (4000, 4000, len(phones))
    sms = Counter(json.loads(line)["to"] for line in logs["sms"].read_text().splitlines())
    assert max(sms.values()) == 1  # never a second confirmation to the same client


def outbox_busy(hub) -> bool:
    """Rows still to send; one the killed worker was sending stays ``sending`` until the
    scheduler's timeout marks it ``unknown`` (never resent blindly)."""
    with hub.db.read() as session:
        return bool(session.scalar(select(func.count()).select_from(Notification).where(
            Notification.status.in_(("pending", "failed")))))
