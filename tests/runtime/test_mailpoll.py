"""The mail poller against a real Dovecot: raw events and checkpoints, batches, after-commit
actions, TLS, IDLE, the pipeline on stored mail, health in /healthz and /metrics."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
from rq import Queue
from sqlalchemy import select

from hub import create_app
from hub.config import ConfigError, load_config
from hub.pipeline import process_pending
from hub.runtime import mailpoll
from hub.store.models import Checkpoint, Lead, RawEvent, Touch
from hub.store.queue import QUEUE_NAME

from tests.helpers import IMAP_PASSWORD, IMAP_PASSWORD_ENV, fixture_bytes, lead_message, wait_for


def events(hub) -> list[RawEvent]:
    with hub.db.read() as session:
        return list(session.scalars(select(RawEvent).order_by(RawEvent.id)))


def checkpoint(hub, key: str = "sales", folder: str = "INBOX") -> Checkpoint:
    with hub.db.read() as session:
        return session.scalar(select(Checkpoint).where(Checkpoint.source == key, Checkpoint.folder == folder))


def test_poll_once_stores_raw_events_with_the_checkpoint(dovecot, mail_hub, redis_client):
    user = dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(user)})
    messages = [lead_message(i) for i in range(3)]
    dovecot.deliver(user, messages)

    assert mailpoll.run(hub, once=True) == 0

    stored = events(hub)
    assert [raw.body for raw in stored] == messages
    first = stored[0]
    assert (first.channel, first.kind, first.provider, first.endpoint, first.method, first.status) == (
        "mail", "mail", "imap", "sales", "IMAP", "pending")
    assert first.url == "imap://127.0.0.1/INBOX;UID=1"
    assert IMAP_PASSWORD not in first.url and IMAP_PASSWORD not in str(first.headers)
    assert first.delivery_key.startswith("mail/lead-0-")
    assert first.headers["content-type"] == "message/rfc822"
    assert [raw.headers["x-imap-uid"] for raw in stored] == ["1", "2", "3"]
    assert datetime.fromisoformat(first.headers["x-imap-internaldate"]).tzinfo is not None
    mark = checkpoint(hub)
    assert (mark.last_uid, str(mark.uidvalidity)) == (3, first.headers["x-imap-uidvalidity"])
    assert mark.uidvalidity > 0
    assert (mark.behind, mark.consecutive_errors, mark.last_error) == (0, 0, None)
    assert mark.last_success_at is not None
    assert Queue(QUEUE_NAME, connection=redis_client).count == 1  # the pipeline was kicked


def test_the_pipeline_turns_stored_mail_into_leads(dovecot, mail_hub, drain_queue):
    user = dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(user)})
    tagged = fixture_bytes("mail/plus__tag_yandex.eml").replace(b"sales+yandex@", f"{user}+yandex@".encode())
    dovecot.deliver(user, [fixture_bytes("mail/cyrillic__windows1251_8bit.eml"), tagged])
    assert mailpoll.run(hub, once=True) == 0
    drain_queue()

    with hub.db.read() as session:
        leads = {lead.email: lead for lead in session.scalars(select(Lead))}
        touches = list(session.scalars(select(Touch).order_by(Touch.id)))
    ivan = leads["ivan.petrov@example.ru"]
    assert (ivan.name, ivan.phone, ivan.channel) == ("Иван Петров", "+79161234567", "mail")
    assert ivan.source["mailbox"] == "sales"
    assert leads["alexey@example.org"].source["utm_source"] == "yandex"
    assert touches[0].touch_key == "mail:20261123100000.4A1B2C3D@example.ru"
    assert touches[0].details == {"mailbox": "sales", "message_id": "20261123100000.4A1B2C3D@example.ru",
                                  "subject": "Заявка на подключение CRM", "text": ivan.message}


def test_batches_in_uid_order_and_only_new_mail_on_the_next_poll(dovecot, mail_hub, monkeypatch):
    user = dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(user, batch_size=3)})
    dovecot.deliver(user, [lead_message(i) for i in range(10)])
    commits = []
    original = mailpoll.commit_batch
    monkeypatch.setattr(mailpoll, "commit_batch", lambda *a, **kw: commits.append(a[4]) or original(*a, **kw))

    assert mailpoll.run(hub, once=True) == 0
    assert commits == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
    dovecot.deliver(user, [lead_message(i) for i in range(10, 12)])
    assert mailpoll.run(hub, once=True) == 0
    assert commits[4:] == [[11, 12]]
    assert [int(raw.headers["x-imap-uid"]) for raw in events(hub)] == list(range(1, 13))


def test_ignored_mail_and_one_broken_message_that_does_not_block_the_others(dovecot, mail_hub):
    user = dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(user)})
    names = ["cyrillic__koi8r_qp.eml", "broken__mime_no_boundary.eml", "autoreply__auto_submitted.eml",
             "bounce__dsn.eml", "bulk__list_unsubscribe.eml", "spam__flagged.eml",
             "thread__reply_in_reply_to.eml", "cyrillic__windows1251_8bit.eml"]
    dovecot.deliver(user, [fixture_bytes(f"mail/{name}") for name in names])
    assert mailpoll.run(hub, once=True) == 0
    process_pending(hub)

    outcome = [(raw.status, raw.error if raw.status == "ignored" else None) for raw in events(hub)]
    assert outcome == [("processed", None), ("failed", None), ("ignored", "auto-reply"),
                       ("ignored", "bounce"), ("ignored", "bulk"), ("ignored", "spam"),
                       ("processed", None), ("processed", None)]
    broken = events(hub)[1]
    assert "unparseable MIME" in broken.error and broken.body == fixture_bytes(f"mail/{names[1]}")
    with hub.db.read() as session:
        names_found = set(session.scalars(select(Lead.name)))
    assert names_found == {"Сергей Кузнецов", "Иван Петров"}  # the reply merged into Ivan's lead


def test_after_commit_seen_marks_only_what_was_stored(dovecot, mail_hub):
    user = dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(user, after_commit="seen")})
    dovecot.deliver(user, [lead_message(i) for i in range(3)])
    assert mailpoll.run(hub, once=True) == 0
    with dovecot.client(user) as client:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags([1, 2, 3])
    assert all(b"\\Seen" in flags[uid] for uid in (1, 2, 3))


def test_after_commit_move_empties_the_folder_without_duplicates(dovecot, mail_hub):
    user = dovecot.add_user()
    with dovecot.client(user) as client:
        client.create_folder("Processed")
    hub = mail_hub({"sales": dovecot.mailbox(user, after_commit="move", move_to="Processed")})
    dovecot.deliver(user, [lead_message(i) for i in range(4)])
    assert mailpoll.run(hub, once=True) == 0
    dovecot.deliver(user, [lead_message(9)])
    assert mailpoll.run(hub, once=True) == 0
    with dovecot.client(user) as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
        assert client.select_folder("Processed")[b"EXISTS"] == 5
    assert mailpoll.run(hub, once=True) == 0  # an empty folder is an ordinary, successful poll
    assert len(events(hub)) == 5
    assert (checkpoint(hub).last_uid, checkpoint(hub).behind) == (5, 0)


@pytest.mark.parametrize("transport", ["ssl", "starttls"])
def test_tls_with_a_self_signed_certificate(dovecot, mail_hub, transport):
    if not dovecot.certificate:
        pytest.fail("openssl is needed to make a test certificate (Dovecot's package brings it)")
    user = dovecot.add_user()
    settings = {"ssl": True, "port": dovecot.ssl_port} if transport == "ssl" else {"starttls": True}
    hub = mail_hub({"sales": dovecot.mailbox(user, ssl_ca_file=str(dovecot.certificate[0]), **settings)})
    dovecot.deliver(user, [lead_message(1)])
    assert mailpoll.run(hub, once=True) == 0
    assert len(events(hub)) == 1


def test_untrusted_certificate_is_refused(dovecot, mail_hub, capsys, monkeypatch):
    if not dovecot.certificate:
        pytest.fail("openssl is needed to make a test certificate (Dovecot's package brings it)")
    user = dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(user, ssl=True, port=dovecot.ssl_port)})
    monkeypatch.setattr(mailpoll, "BACKOFF_BASE", 0.01)
    assert mailpoll.run(hub, once=True) == 1
    assert "mailbox sales failed: SSLCertVerificationError" in capsys.readouterr().err


def test_idle_wakes_the_long_running_poller_on_new_mail(dovecot, mail_hub):
    user = dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(user, poll_interval="60s")})
    stop = threading.Event()
    poller = threading.Thread(target=mailpoll.run, args=(hub,), kwargs={"stop": stop})
    poller.start()
    try:
        assert wait_for(lambda: (checkpoint(hub) or Checkpoint()).last_success_at is not None)
        time.sleep(0.3)  # in IDLE now
        started = time.monotonic()
        dovecot.deliver(user, [lead_message(1)])
        assert wait_for(lambda: len(events(hub)) == 1, timeout=10)
        assert time.monotonic() - started < 10  # well before the 60 s poll interval
    finally:
        stop.set()
        poller.join(10)
    assert not poller.is_alive()


def web_client(hub):
    return create_app({"hub": hub}).test_client()


def test_healthz_and_metrics_report_each_mailbox(dovecot, mail_hub):
    user = dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(user, stale_after="5m")})
    client = web_client(hub)
    dovecot.deliver(user, [lead_message(1)])
    assert client.get("/healthz").get_json()["mailboxes"] == {
        "sales": "stale: never polled (the mail poller has not started)"}
    assert mailpoll.run(hub, once=True) == 0

    health = client.get("/healthz")
    assert (health.status_code, health.get_json()["mailboxes"]) == (200, {"sales": "ok"})
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'hub_mailbox_behind{mailbox="sales"} 0.0' in metrics
    assert 'hub_mailbox_consecutive_errors{mailbox="sales"} 0.0' in metrics
    assert 'hub_mailbox_last_success_timestamp{mailbox="sales"} 1.' in metrics

    later = hub.now() + timedelta(minutes=6)
    hub.clock = lambda: later
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["mailboxes"]["sales"].startswith("stale: no successful poll for 36")


def test_a_started_poller_that_never_succeeded_turns_stale(dovecot, mail_hub):
    user = dovecot.add_user()
    hub = mail_hub({"sales": dovecot.mailbox(user, stale_after="1m")})
    client = web_client(hub)
    mailpoll.MailboxPoller(hub, "sales").mark_started()
    assert client.get("/healthz").get_json()["mailboxes"] == {"sales": "ok"}
    later = hub.now() + timedelta(minutes=2)
    hub.clock = lambda: later
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["mailboxes"]["sales"].startswith("stale: never polled, 1")


def test_no_mailboxes_polls_nothing(hub):
    assert mailpoll.run(hub, once=True) == 0


@pytest.mark.parametrize("mailbox, problem", [
    ({"after_commit": "move"}, "mailboxes.sales.move_to: after_commit: move needs a move_to folder"),
    ({"after_commit": "archive"}, "mailboxes.sales.after_commit: Must be one of: keep, seen, move."),
    ({"ssl": True, "starttls": True}, "mailboxes.sales.starttls: use either ssl"),
    ({"poll_interval": "soon"}, "mailboxes.sales.poll_interval: not a duration"),
    ({"password_env": "HUB_TEST_UNSET_VARIABLE"}, "mailboxes.sales.password_env: environment variable"),
])
def test_mailbox_config_is_validated(mailbox, problem, config_document, monkeypatch):
    monkeypatch.setenv(IMAP_PASSWORD_ENV, IMAP_PASSWORD)
    config_document["mailboxes"] = {"sales": {"host": "127.0.0.1", "username": "sales",
                                              "password_env": IMAP_PASSWORD_ENV, **mailbox}}
    with pytest.raises(ConfigError) as error:
        load_config(document=config_document)
    assert any(line.startswith(problem) for line in error.value.problems), error.value.problems


def test_mailbox_defaults(config_document, monkeypatch):
    monkeypatch.setenv(IMAP_PASSWORD_ENV, IMAP_PASSWORD)
    config_document["mailboxes"] = {"sales": {"host": "imap.example.com", "username": "sales@example.com",
                                              "password_env": IMAP_PASSWORD_ENV}}
    sales = load_config(document=config_document)["mailboxes"]["sales"]
    assert {
        key: sales[key]
        for key in (
            "ssl",
            "starttls",
            "folder",
            "after_commit",
            "poll_interval",
            "stale_after",
            "batch_size",
            "own_addresses",
            "company_phones",
        )
    } == {
        "ssl": True,
        "starttls": False,
        "folder": "INBOX",
        "after_commit": "keep",
        "poll_interval": timedelta(seconds=60),
        "stale_after": timedelta(minutes=15),
        "batch_size": 200,
        "own_addresses": [],
        "company_phones": [],
    }
