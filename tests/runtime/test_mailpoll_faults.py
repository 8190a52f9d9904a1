"""Faults against a real Dovecot; each test ends with every lead present exactly once."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml
from sqlalchemy import func, select

from hub import create_app, registry
from hub.pipeline import process_pending
from hub.runtime import mailpoll
from hub.store.models import Checkpoint, Lead, RawEvent, Touch

from tests.helpers import IMAP_PASSWORD, IMAP_PASSWORD_ENV, free_port, lead_message, wait_for


def counts(hub) -> dict:
    """Events by status, leads, touches, distinct lead e-mails: "each lead exactly once"."""
    with hub.db.read() as session:
        statuses = dict(session.execute(select(RawEvent.status, func.count()).group_by(RawEvent.status)).all())
        leads = session.scalar(select(func.count()).select_from(Lead))
        touches = session.scalar(select(func.count()).select_from(Touch))
        emails = session.scalar(select(func.count(func.distinct(Lead.email))))
    return {"events": statuses, "leads": leads, "touches": touches, "distinct_emails": emails}


def exactly_once(hub, leads: int) -> None:
    process_pending(hub)
    assert counts(hub) == {"events": {"processed": leads}, "leads": leads, "touches": leads,
                           "distinct_emails": leads}


def stored(hub) -> int:
    with hub.db.read() as session:
        return len(list(session.scalars(select(RawEvent.id))))


def checkpoint(hub, key: str = "sales") -> Checkpoint:
    with hub.db.read() as session:
        return session.scalar(select(Checkpoint).where(Checkpoint.source == key)) or Checkpoint()


@pytest.fixture
def fast_backoff(monkeypatch):
    monkeypatch.setattr(mailpoll, "BACKOFF_BASE", 0.05)


class Poller:
    """The long-running poller (``hub mail poll``) on a thread of the test."""

    def __init__(self, hub):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=mailpoll.run, args=(hub,), kwargs={"stop": self.stop})

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


def test_imap_connection_killed_mid_batch(dovecot, mail_hub, fast_backoff, monkeypatch, caplog):
    user = dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(user, batch_size=5)})
    dovecot.deliver(user, [lead_message(i) for i in range(40)])
    imap, calls, killed = registry.intake("mail", "imap"), [], []
    original = imap.fetch

    def fetch_and_kill(client, uids):
        calls.append(uids)
        if len(calls) == 3:  # the imap process dies while the third batch is being fetched
            threading.Timer(0.002, lambda: killed.append(dovecot.kill_sessions(user))).start()
            time.sleep(0.05)
        return original(client, uids)

    monkeypatch.setattr(imap, "fetch", fetch_and_kill)
    with Poller(hub):
        assert wait_for(lambda: checkpoint(hub).last_uid == 40 and not checkpoint(hub).consecutive_errors)
    assert killed == [1]
    assert any("mailbox sales:" in record.getMessage() for record in caplog.records
               if record.levelno == logging.WARNING)
    assert calls[2] == calls[3] == [11, 12, 13, 14, 15]  # the failed batch, fetched again
    exactly_once(hub, 40)


def test_poller_killed_between_fetch_and_commit(dovecot, mail_hub, database_url, redis_url, tmp_path):
    user = dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(user, batch_size=10)})
    dovecot.deliver(user, [lead_message(i) for i in range(30)])
    env = poller_env(hub, database_url, redis_url, tmp_path)

    poller = subprocess.Popen([sys.executable, "-m", "hub", "mail", "poll"], cwd=tmp_path, stderr=subprocess.PIPE,
                              env={**env, mailpoll.PAUSE_HOOK: "3"}, text=True)
    pauses = 0
    for line in poller.stderr:  # the second pause: batch 1 committed, batch 2 fetched, not committed
        pauses += mailpoll.PAUSE_HOOK in line
        if pauses == 2:
            break
    poller.send_signal(signal.SIGKILL)
    poller.wait(10)
    assert (stored(hub), checkpoint(hub).last_uid) == (10, 10)

    again = subprocess.run([sys.executable, "-m", "hub", "mail", "poll", "--once"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert (stored(hub), checkpoint(hub).last_uid) == (30, 30)
    exactly_once(hub, 30)


def poller_env(hub, database_url: str, redis_url: str, tmp_path) -> dict:
    config_path = tmp_path / "hub.yaml"
    config_path.write_text(yaml.safe_dump(hub.config.document, allow_unicode=True), encoding="utf-8")
    return {**os.environ, "HUB_CONFIG": str(config_path), "DATABASE_URL": database_url,
            "REDIS_URL": redis_url, IMAP_PASSWORD_ENV: IMAP_PASSWORD}


def test_folder_deleted_and_recreated_with_the_same_messages(dovecot, mail_hub, caplog):
    user = dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(user, folder="Leads")})
    messages = [lead_message(i) for i in range(5)]
    dovecot.deliver(user, messages, folder="Leads")
    assert mailpoll.run(hub, once=True) == 0
    before = checkpoint(hub).uidvalidity

    with dovecot.client(user) as client:
        client.delete_folder("Leads")
        client.create_folder("Leads")
    dovecot.deliver(user, messages + [lead_message(i) for i in range(5, 7)], folder="Leads")
    assert mailpoll.run(hub, once=True) == 0

    mark = checkpoint(hub)
    assert mark.uidvalidity != before and mark.last_uid == 7
    assert any("UIDVALIDITY changed" in record.getMessage() for record in caplog.records)
    assert stored(hub) == 7
    exactly_once(hub, 7)


def test_same_message_delivered_to_two_mailboxes(dovecot, mail_hub):
    first, second = dovecot.add_user(), dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(first), "support": dovecot.mailbox(second)})
    shared = [lead_message(i) for i in range(20)]
    dovecot.deliver(first, shared)
    dovecot.deliver(second, shared + [lead_message(99)])
    assert mailpoll.run(hub, once=True) == 0  # both mailboxes at once, on two threads
    assert stored(hub) == 21
    exactly_once(hub, 21)


def test_a_person_reading_mail_between_polls_changes_nothing(dovecot, mail_hub):
    user = dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(user)})
    dovecot.deliver(user, [lead_message(i) for i in range(3)])
    with dovecot.client(user) as person:
        person.select_folder("INBOX")
        person.add_flags([1], [b"\\Seen"])  # read before the hub ever polled
        assert mailpoll.run(hub, once=True) == 0
        assert [b"\\Seen" in flags for flags in person.get_flags([1, 2, 3]).values()] == [True, False, False]
        person.add_flags([2, 3], [b"\\Seen"])
        dovecot.deliver(user, [lead_message(i) for i in range(3, 5)])
        assert mailpoll.run(hub, once=True) == 0
        person.remove_flags([1, 2], [b"\\Seen"])  # marked unread again
        assert mailpoll.run(hub, once=True) == 0
    assert stored(hub) == 5
    exactly_once(hub, 5)


def test_ten_mailboxes_one_unreachable(dovecot, mail_hub, database_url, redis_url, tmp_path):
    users = [dovecot.add_user() for _ in range(10)]
    mailboxes = {f"box{n}": dovecot.mailbox(user) for n, user in enumerate(users)}
    mailboxes["box7"]["port"] = free_port()  # nothing listens there
    hub = mail_hub(mailboxes)
    for n, user in enumerate(users):
        dovecot.deliver(user, [lead_message(100 * n + i) for i in range(3)])

    result = subprocess.run([sys.executable, "-m", "hub", "mail", "poll", "--once"], cwd=tmp_path, timeout=120,
                            env=poller_env(hub, database_url, redis_url, tmp_path), capture_output=True, text=True)
    assert result.returncode == 1
    assert "mailbox box7 failed: ConnectionRefusedError" in result.stderr
    assert "failed" not in result.stderr.replace("mailbox box7 failed", "")
    assert IMAP_PASSWORD not in result.stderr
    assert stored(hub) == 27

    health = create_app({"hub": hub}).test_client().get("/healthz")
    states = health.get_json()["mailboxes"]
    assert health.status_code == 503
    assert states.pop("box7").startswith("error: 3 failed polls in a row, last: ConnectionRefusedError")
    assert states == {f"box{n}": "ok" for n in range(10) if n != 7}
    exactly_once(hub, 27)


def test_server_restart_while_polling(own_dovecot, mail_hub, fast_backoff):
    user = own_dovecot.add_user()
    hub = mail_hub({"sales": own_dovecot.mailbox(user, poll_interval="60s")})
    client = create_app({"hub": hub}).test_client()
    own_dovecot.deliver(user, [lead_message(i) for i in range(10)])
    with Poller(hub):
        assert wait_for(lambda: stored(hub) == 10)
        own_dovecot.stop()
        assert wait_for(lambda: (checkpoint(hub).consecutive_errors or 0) >= 2)
        assert client.get("/healthz").get_json()["mailboxes"]["sales"].startswith("error: ")
        own_dovecot.start()
        own_dovecot.deliver(user, [lead_message(i) for i in range(10, 20)])
        assert wait_for(lambda: stored(hub) == 20 and checkpoint(hub).consecutive_errors == 0)
    assert client.get("/healthz").get_json()["mailboxes"] == {"sales": "ok"}
    exactly_once(hub, 20)


def test_connection_lost_while_idle_reconnects(dovecot, mail_hub, fast_backoff):
    user = dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(user, poll_interval="60s")})
    dovecot.deliver(user, [lead_message(1)])
    with Poller(hub):
        assert wait_for(lambda: checkpoint(hub).last_success_at is not None and stored(hub) == 1)
        time.sleep(0.3)  # waiting in IDLE
        assert dovecot.kill_sessions(user) == 1
        dovecot.deliver(user, [lead_message(i) for i in range(2, 5)])
        assert wait_for(lambda: stored(hub) == 4, timeout=15)
    exactly_once(hub, 4)


def test_a_silent_server_times_out(mail_hub, fast_backoff, capsys):
    with socket.socket() as silent:  # accepts connections, never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hub = mail_hub({"sales": {"host": "127.0.0.1", "port": silent.getsockname()[1], "ssl": False,
                                  "username": "sales", "password_env": IMAP_PASSWORD_ENV, "timeout": "1s"}})
        started = time.monotonic()
        assert mailpoll.run(hub, once=True) == 1
    assert time.monotonic() - started < 10
    assert "mailbox sales failed: TimeoutError" in capsys.readouterr().err
    assert checkpoint(hub).consecutive_errors == mailpoll.ONCE_ATTEMPTS
