"""Several processes at once: two workers routing one backlog, a scheduler killed mid-run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import yaml
from sqlalchemy import func, select, update

from hub.pipeline import process_pending
from hub.store.models import Assignment, Lead, LeadHistory, Notification, Timer

from tests.helpers import insert_pending_forms, wait_for


def spawn(args, config_document, tmp_path, database_url, redis_url, logs) -> subprocess.Popen:
    config_path = tmp_path / "hub.yaml"
    config_path.write_text(yaml.safe_dump(config_document, allow_unicode=True), encoding="utf-8")
    env = {**os.environ, "HUB_CONFIG": str(config_path), "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "HUB_SMS_LOG": str(logs["sms"]), "HUB_MAIL_LOG": str(logs["mail"])}
    return subprocess.Popen([sys.executable, "-m", "hub", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_two_workers_route_a_thousand_leads_fairly(hub, config_document, tmp_path, database_url, redis_url, logs):
    config_document["pipeline"] = {"batch_size": 20}
    config_document["team"] += [{"id": "clara", "name": "Clara", "role": "manager"}]
    insert_pending_forms(hub, [f"+7925{i:07d}" for i in range(1000)])
    workers = [spawn(["worker", "--burst"], config_document, tmp_path, database_url, redis_url, logs)
               for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=300) == 0
    with hub.db.read() as session:
        owners = Counter(session.scalars(select(Lead.assignee_id)))
        assignments = Counter(session.scalars(select(Assignment.lead_id)))
    assert sum(owners.values()) == 1000 and None not in owners
    assert set(owners) == {"anna", "boris", "clara"}
    assert max(owners.values()) - min(owners.values()) <= 1
    assert len(assignments) == 1000 and set(assignments.values()) == {1}


def test_scheduler_killed_and_restarted_fires_every_timer_once(hub, config_document, tmp_path,
                                                              database_url, redis_url, logs):
    insert_pending_forms(hub, [f"+7926{i:07d}" for i in range(1500)])
    process_pending(hub)
    with hub.db.write() as session:  # every reminder and escalation is due now
        session.execute(update(Timer).values(due_at=hub.now()))
        due = session.scalar(select(func.count()).select_from(Timer))
    assert due == 3000

    def fired() -> int:
        with hub.db.read() as session:
            return session.scalar(select(func.count()).select_from(Timer).where(Timer.status != "pending"))

    scheduler = spawn(["scheduler"], config_document, tmp_path, database_url, redis_url, logs)
    assert wait_for(lambda: fired() > 0, timeout=120)
    scheduler.send_signal(signal.SIGKILL)
    scheduler.wait(timeout=10)
    assert fired() < due, "the scheduler finished before it was killed"
    scheduler = spawn(["scheduler"], config_document, tmp_path, database_url, redis_url, logs)
    try:
        assert wait_for(lambda: fired() >= due, timeout=120)
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=10)
    with hub.db.read() as session:
        statuses = Counter(session.scalars(select(Timer.status).where(Timer.id <= due)))
        reminded = Counter(session.scalars(select(LeadHistory.lead_id).where(LeadHistory.action == "reminded")))
        escalated = Counter(session.scalars(select(LeadHistory.lead_id).where(LeadHistory.action == "escalated")))
        reminders = session.scalar(select(func.count()).select_from(Notification).where(
            Notification.rule.startswith("reminder:")))
    assert statuses == {"fired": due}
    assert len(reminded) == len(escalated) == 1500
    assert set(reminded.values()) == set(escalated.values()) == {1}
    assert reminders == 1500
