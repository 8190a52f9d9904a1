"""The admin's pages: the inbox (the raw request masked, replay, triage of ignored mail) and
the dead letters (replay one, or all of a channel or a CRM target)."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from hub.delivery import outbox
from hub.pipeline import process_pending
from hub.store.models import Notification, RawEvent, SyncDelivery

from tests.helpers import store_mail


@pytest.fixture
def config_document(config_document, monkeypatch):
    monkeypatch.setenv("SALES_IMAP_PASSWORD", "imap-password")
    config_document["mailboxes"] = {"sales": {"host": "127.0.0.1", "username": "sales@example.com",
                                              "password_env": "SALES_IMAP_PASSWORD"}}
    config_document["forms"]["secured"] = {"mapping": "generic", "secret_env": "SECURED_FORM_SECRET"}
    monkeypatch.setenv("SECURED_FORM_SECRET", "form-secret-value")
    return config_document


def kill_notifications(hub, lead: int) -> None:
    """As the outbox leaves a message that failed for good."""
    with hub.db.write() as session:
        session.execute(update(Notification).where(Notification.lead_id == lead).values(
            status="dead", attempts=8, last_error="smtp: 550 mailbox unavailable"))


def test_only_admins_see_the_inbox_and_the_dead_letters(console):
    for path in ("/console/inbox", "/console/dead"):
        assert console("vera").get(path).status_code == 403
        assert console("ada").get(path).status_code == 200


def test_the_raw_request_is_shown_escaped_with_its_credentials_masked(console, client, hub, run_jobs):
    posted = client.post("/hooks/forms/secured", headers={"X-Hub-Signature": "sig-value"}, data={
        "name": "<img src=x onerror=alert(1)>", "phone": "+79161234567", "_secret": "form-secret-value"})
    event_id = posted.json["event_id"]
    run_jobs()
    ada = console("ada")
    assert f"/console/events/{event_id}" in ada.get("/console/inbox?kind=form&status=processed").text
    assert f"/console/events/{event_id}" not in ada.get("/console/inbox?status=ignored").text
    page = ada.get(f"/console/events/{event_id}").text
    assert "form-secret-value" not in page and "sig-value" not in page
    assert "_secret=••••••" in page and "x-hub-signature: ••••••" in page
    assert "name=&lt;img src=x onerror=alert(1)&gt;" in page


def test_ignored_mail_becomes_a_lead_or_spam_recorded_with_who_said_so(console, hub):
    auto_reply, another = (
        store_mail(hub, "autoreply__auto_submitted.eml"),
        store_mail(hub, "autoreply__x_autoreply.eml"),
    )
    process_pending(hub)
    ada = console("ada")
    listed = ada.get("/console/inbox?kind=mail&status=ignored").text
    assert f"/console/events/{auto_reply}" in listed and "auto-reply" in listed
    assert ada.post(f"/console/events/{auto_reply}/triage", {"verdict": "lead"}).status_code == 302
    assert ada.post(f"/console/events/{another}/triage", {"verdict": "spam"}).status_code == 302
    with hub.db.read() as session:
        made, spam = (session.scalar(select(RawEvent).where(RawEvent.event_id == e)) for e in (auto_reply, another))
    assert (made.status, made.override, made.triaged_by) == ("processed", "as-lead", "ada") and made.lead_id
    assert (spam.status, spam.override, spam.triaged_by, spam.lead_id) == ("ignored", "spam", "ada", None)
    assert "спам · ada" in ada.get(f"/console/events/{another}").text


def test_replaying_an_event_runs_the_pipeline_again_without_a_second_lead(console, make_lead, hub):
    number = make_lead()
    with hub.db.read() as session:
        event_id = session.scalar(select(RawEvent.event_id))
    answer = console("ada").post(f"/console/events/{event_id}/replay")
    assert answer.status_code == 302
    with hub.db.read() as session:
        assert session.scalar(select(RawEvent.lead_id)) == number


def test_a_dead_notification_is_replayed_alone_or_with_its_channel(console, make_lead, hub, logs):
    first, second = make_lead("One", "+79161110001", email="one@example.com"), make_lead("Two", "+79161110002")
    kill_notifications(hub, first)
    kill_notifications(hub, second)
    ada = console("ada")
    page = ada.get("/console/dead").text
    assert "smtp: 550 mailbox unavailable" in page
    with hub.db.read() as session:
        email = session.scalar(
            select(Notification).where(Notification.lead_id == first, Notification.channel == "email")
        )
    forms = page.split('<form method="post" action="/console/dead/notifications">')[1:]
    assert any(f'name="id" value="{email.id}"' in form.split("</form>")[0] for form in forms)
    assert ada.post("/console/dead/notifications", {"id": str(email.id)}).status_code == 302
    with hub.db.read() as session:
        states = dict(session.execute(select(Notification.id, Notification.status)).all())
    assert states[email.id] == "pending" and sorted(states.values()).count("dead") == len(states) - 1
    outbox.deliver_due(hub)
    assert "one@example.com" in logs["mail"].read_text()
    ada.post("/console/dead/notifications", {"channel": "sms"})
    with hub.db.read() as session:
        assert session.scalars(select(Notification.status).where(Notification.status == "dead")).all() == []


def test_dead_crm_deliveries_are_replayed_by_target(console, make_lead, hub):
    number = make_lead()
    with hub.db.write() as session:
        session.add_all(
            [
                SyncDelivery(
                    lead_id=number, target=target, status="dead", attempts=12, last_error=f"{target}: HTTP 500"
                )
                for target in ("bitrix24", "webhook")
            ]
        )
    ada = console("ada")
    assert "bitrix24: HTTP 500" in ada.get("/console/dead").text
    ada.post("/console/dead/syncs", {"target": "webhook"})
    with hub.db.read() as session:
        states = dict(session.execute(select(SyncDelivery.target, SyncDelivery.status)).all())
    assert states == {"bitrix24": "dead", "webhook": "pending"}


def test_a_dead_message_to_the_team_is_listed_without_a_lead(console, hub):
    """Silence alarms go to admins with no lead behind them."""
    with hub.db.write() as session:
        session.add(
            Notification(
                lead_id=None,
                rule="silence:forms/landing",
                channel="email",
                sender="log",
                to="ada@example.com",
                text="silent",
                status="dead",
                attempts=8,
                last_error="smtp: 550 mailbox unavailable",
            )
        )
    page = console("ada").get("/console/dead")
    assert page.status_code == 200 and "ada@example.com" in page.text and "silence:forms/landing" in page.text
