"""The outbox: confirmations leave once, retry with backoff, end dead and visible, replay."""
from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hub.delivery import outbox
from hub.delivery.replay import replay_notifications
from hub.runtime import scheduler
from hub.store.models import Notification

from tests.helpers import SmtpServer

FORM = {"name": "Ivan", "phone": "+79161234567", "email": "ivan@example.com"}


@pytest.fixture
def smtp_hub(hub):
    """E-mail confirmations by SMTP to a port that refuses connections until a test starts a
    server: the port is bound but not listening, so no other process can take it meanwhile."""
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))
        hub.config["email"]["sender"] = "smtp"
        hub.config["email"]["smtp"].update(host="127.0.0.1", port=refusing.getsockname()[1], timeout=5)
        hub.config.data["confirmations"] = [hub.config["confirmations"][1]]  # e-mail only
        yield hub


def email_row(hub) -> Notification:
    with hub.db.read() as session:
        return session.scalar(select(Notification).where(Notification.channel == "email"))


def submit(client, run_jobs):
    assert client.post("/hooks/forms/landing", data=FORM).status_code == 202
    run_jobs()


def to_client(server) -> int:
    """Confirmations only: meanwhile the team gets its reminders and escalations too."""
    return sum(1 for m in server.inbox.messages if m["To"] == FORM["email"])


def later(hub, delta):
    moment = hub.now() + delta
    hub.clock = lambda: moment


def test_confirmation_by_smtp(smtp_hub, client, run_jobs):
    with SmtpServer() as server:
        smtp_hub.config["email"]["smtp"]["port"] = server.port
        submit(client, run_jobs)
        [mail] = server.inbox.messages
    assert mail["To"] == "ivan@example.com"
    assert mail["Subject"] == "Ваша заявка №1"
    assert mail.get_content().strip() == "Ваша заявка принята в работу. Номер 1"
    row = email_row(smtp_hub)
    assert (row.status, row.attempts, row.provider_message_id) == ("sent", 1, mail["Message-ID"].strip())


def test_a_name_with_cr_lf_still_gets_its_confirmation(smtp_hub, client, run_jobs):
    smtp_hub.config["confirmations"][0]["subject"] = "{name}, ваша заявка №{number}"
    moment = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
    smtp_hub.clock = lambda: moment
    with SmtpServer() as server:
        smtp_hub.config["email"]["smtp"]["port"] = server.port
        assert (
            client.post("/hooks/forms/landing", data={**FORM, "name": "Ivan\r\nBcc: boss@example.com"}).status_code
            == 202
        )
        run_jobs()
    [mail], [raw] = server.inbox.messages, server.inbox.raw
    assert server.inbox.recipients == [["ivan@example.com"]] and b"\r\nBcc:" not in raw
    assert mail["Subject"] == "Ivan Bcc: boss@example.com, ваша заявка №1"
    assert mail["Date"].datetime == moment  # the hub's clock
    assert mail["Message-ID"].endswith("@localhost>")  # the configured sender's domain
    assert (email_row(smtp_hub).status, email_row(smtp_hub).attempts) == ("sent", 1)


def test_server_down_then_back_sends_once(smtp_hub, client, run_jobs):
    submit(client, run_jobs)  # nothing listens on the port
    row = email_row(smtp_hub)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.next_attempt_at > smtp_hub.now()
    assert "SMTP" in row.last_error
    with SmtpServer() as server:
        smtp_hub.config["email"]["smtp"]["port"] = server.port
        later(smtp_hub, timedelta(hours=2))
        assert scheduler.tick(smtp_hub)["outbox"] is True
        run_jobs()
        assert to_client(server) == 1
        later(smtp_hub, timedelta(hours=4))
        scheduler.tick(smtp_hub)
        run_jobs()
        assert to_client(server) == 1
    assert (email_row(smtp_hub).status, email_row(smtp_hub).attempts) == ("sent", 2)


def test_backoff_grows_and_ends_dead(smtp_hub, client, run_jobs):
    smtp_hub.config["outbox"]["max_attempts"] = 3
    submit(client, run_jobs)
    delays = []
    for _ in range(2):
        row = email_row(smtp_hub)
        delays.append(row.next_attempt_at - smtp_hub.now())
        later(smtp_hub, delays[-1] + timedelta(seconds=1))
        outbox.deliver_due(smtp_hub)
    assert delays[1] > delays[0] * 0.9  # exponential, with at most half taken off by jitter
    row = email_row(smtp_hub)
    assert (row.status, row.attempts) == ("dead", 3)


def test_permanent_refusal_is_dead_at_once_and_replayable(smtp_hub, client, run_jobs):
    with SmtpServer() as server:
        smtp_hub.config["email"]["smtp"]["port"] = server.port
        server.inbox.refuse["ivan@example.com"] = "550 5.1.1 mailbox unavailable"
        submit(client, run_jobs)
        row = email_row(smtp_hub)
        assert (row.status, row.attempts) == ("dead", 1) and "550" in row.last_error
        del server.inbox.refuse["ivan@example.com"]
        assert replay_notifications(smtp_hub) == 1
        run_jobs()
        assert len(server.inbox.messages) == 1
    assert email_row(smtp_hub).status == "sent"


def test_a_row_left_sending_becomes_unknown_not_resent(hub, client, run_jobs, logs):
    hub.config["sms"]["quiet_hours"] = None  # both rows are due now, whatever the hour
    kick = hub.kicker.kick
    hub.kicker.kick = lambda job, force=False: job != "outbox" and kick(job, force)  # no sending
    submit(client, run_jobs)
    claimed = outbox.claim_due(hub)  # a worker claims the rows, then dies before sending
    assert {row.status for row in claimed} == {"sending"}
    later(hub, timedelta(minutes=11))
    assert scheduler.tick(hub)["stuck"] == 2
    with hub.db.read() as session:
        rows = list(session.scalars(select(Notification)))
    assert {row.status for row in rows} == {"unknown"}
    assert outbox.deliver_due(hub) == 0 and not logs["sms"].exists()


def test_a_sender_missing_from_the_registry_ends_the_row_dead_not_sending(hub, client, run_jobs):
    """A row planned under an older config whose sender no longer exists never stays ``sending``."""
    hub.config["sms"]["quiet_hours"] = None
    kick = hub.kicker.kick
    hub.kicker.kick = lambda job, force=False: job != "outbox" and kick(job, force)  # plan, don't send
    submit(client, run_jobs)
    with hub.db.write() as session:
        session.execute(
            Notification.__table__.update().where(Notification.channel == "sms").values(sender="carrier-pigeon")
        )
    outbox.deliver_due(hub)
    with hub.db.read() as session:
        sms = session.scalar(select(Notification).where(Notification.channel == "sms"))
    assert (sms.status, sms.last_error) == ("dead", "no sms sender called 'carrier-pigeon'")


@pytest.mark.parametrize("local_time, held", [("02:30", True), ("11:00", False)])
def test_an_sms_held_by_quiet_hours_says_until_when_and_why(hub, client, run_jobs, api, local_time, held):
    from datetime import datetime

    moment = datetime.fromisoformat(f"2026-12-01T{local_time}:00+03:00")  # a Tuesday in Moscow
    hub.clock = lambda: moment
    hub.config["sms"]["quiet_hours"] = "21:00-09:00"
    submit(client, run_jobs)
    [sms] = [n for n in api.get("/api/leads/1").get_json()["notifications"] if n["channel"] == "sms"]
    if held:
        assert (sms["status"], sms["held_until"]) == ("pending", "2026-12-01T06:00:00+00:00")
        assert sms["reason"] == "quiet hours 21:00-09:00 in the client's time zone (Europe/Moscow)"
    else:
        assert (sms["status"], sms["held_until"], sms["reason"]) == ("sent", None, None)
