"""Mail events through the pipeline: confirmations answer in the client's thread (and start a new
one for mail a colleague or a site relayed), the client's reply to them comes back to the lead,
and an operator can overrule a classification."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from hub.delivery import outbox
from hub.delivery.replay import replay_events
from hub.pipeline import process_pending
from hub.store.models import Notification, RawEvent

from tests.helpers import SmtpServer, fixture_bytes, store_mail


@pytest.fixture
def mailbox(config_document, monkeypatch):
    monkeypatch.setenv("SALES_IMAP_PASSWORD", "secret")
    config_document["mailboxes"] = {"sales": {"host": "127.0.0.1", "username": "sales@example.com",
                                              "password_env": "SALES_IMAP_PASSWORD"}}


def test_confirmation_replies_in_the_thread_and_the_answer_comes_back(mailbox, hub, api, logs):
    event_id = store_mail(hub, "encoding__base64.eml")
    process_pending(hub)
    lead = api.get(f"/api/events/{event_id}").get_json()["lead_number"]
    with hub.db.read() as session:
        [confirmation] = session.scalars(select(Notification).where(Notification.channel == "email"))
    assert confirmation.reply_to_message_id == "<base64-text-0001@example.net>"
    assert confirmation.subject == "Re: Счёт на оплату"
    outbox.deliver_due(hub)
    sent = json.loads(logs["mail"].read_text().splitlines()[0])
    assert sent["in_reply_to"] == "<base64-text-0001@example.net>"
    with hub.db.write() as session:  # the client answers our confirmation, from another address
        row = session.scalar(select(Notification).where(Notification.channel == "email"))
        row.provider_message_id = "<confirmation-0001@example.com>"
    reply = fixture_bytes("mail/encoding__base64.eml").replace(
        b"Message-ID: <base64-text-0001@example.net>",
        b"Message-ID: <answer-0002@example.org>\r\nIn-Reply-To: <confirmation-0001@example.com>").replace(
        b"From: Pavel Orlov <pavel@example.net>", b"From: Pavel <other@example.org>")
    with hub.db.write() as session:
        raw = RawEvent(channel="mail", kind="mail", provider="imap", endpoint="sales", method="IMAP", url="imap://x",
                       headers={"content-type": "message/rfc822"}, body=reply, received_at=hub.now())
        session.add(raw)
    process_pending(hub)
    assert api.get(f"/api/events/{raw.event_id}").get_json()["lead_number"] == lead


def test_replay_as_lead_overrules_an_ignored_auto_reply(mailbox, hub, api):
    event_id = store_mail(hub, "autoreply__auto_submitted.eml")
    process_pending(hub)
    ignored = api.get(f"/api/events/{event_id}").get_json()
    assert (ignored["status"], ignored["error"], ignored["lead_number"]) == ("ignored", "auto-reply", None)
    assert replay_events(hub, event_id=event_id) == [f"{event_id} ignored (auto-reply)"]
    [outcome] = replay_events(hub, event_id=event_id, as_lead=True)
    assert outcome.startswith(f"{event_id} processed lead ")
    lead = api.get(f"/api/leads/{api.get(f'/api/events/{event_id}').get_json()['lead_number']}").get_json()
    assert lead["email"] == "ivan.petrov@example.ru" and lead["source"]["mailbox"] == "sales"


def email_confirmation(hub) -> Notification:
    with hub.db.read() as session:
        return session.scalar(select(Notification).where(Notification.channel == "email"))


def test_confirmation_to_a_forwarded_mail_goes_to_the_original_sender_in_a_new_thread(mailbox, hub):
    hub.config["email"]["sender"] = "smtp"
    store_mail(hub, "forward__rfc822_attachment.eml")  # Anna forwards Nikolay's request
    process_pending(hub)
    row = email_confirmation(hub)
    assert (row.to, row.reply_to_message_id, row.subject) == ("nikolay@example.org", None, "Ваша заявка №1")
    with SmtpServer() as server:
        hub.config["email"]["smtp"]["port"] = server.port
        outbox.deliver_due(hub)
    [(mail, raw)] = [(m, r) for m, r in zip(server.inbox.messages, server.inbox.raw, strict=True) if m["To"] == row.to]
    assert mail["In-Reply-To"] is None and mail["References"] is None
    assert b"forward-rfc822-0001" not in raw and b"original-0001" not in raw


def test_form_notification_from_any_sender_with_utm_tags_in_the_page_url(mailbox, hub, api):
    event_id = store_mail(hub, "form__arbitrary_sender_utm.eml")  # From: "Заказ с сайта" <orders@…>
    process_pending(hub)
    lead = api.get(f"/api/leads/{api.get(f'/api/events/{event_id}').get_json()['lead_number']}").get_json()
    assert (lead["name"], lead["email"], lead["phone"]) == ("Марина Соколова", "marina.sokolova@example.org",
                                                            "+79035551234")
    page = "https://shop.example.net/sofas/?utm_source=yandex&utm_medium=cpc&utm_campaign=sofas-winter&yclid=7712345"
    assert {key: lead["source"][key] for key in ("utm_source", "utm_medium", "utm_campaign", "yclid", "gclid",
                                                 "landing_page", "mailbox")} == {
        "utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "sofas-winter", "yclid": "7712345",
        "gclid": None, "landing_page": page, "mailbox": "sales"}
    row = email_confirmation(hub)  # the client never saw the shop's notification: a new thread
    assert (row.to, row.reply_to_message_id, row.subject) == ("marina.sokolova@example.org", None, "Ваша заявка №1")


def test_the_email_that_replaces_a_dead_sms_has_the_configured_subject(config_document, hub, client, run_jobs):
    hub.config.data["confirmations"] = [{
        "name": "welcome", "channel": "sms", "when": {"channel": ["form"]}, "subject": "Заявка {number}: {name}",
        "text": "Здравствуйте, {name}! " + "Ваша заявка принята в работу. " * 5 + "Номер {number}"}]
    hub.config["sms"]["max_segments"] = 1
    client.post("/hooks/forms/landing", data={"name": "Иван", "phone": "+79161234567", "email": "ivan@example.com"})
    run_jobs()
    row = email_confirmation(hub)
    assert (row.rule, row.to, row.subject) == ("welcome:fallback", "ivan@example.com", "Заявка 1: Иван")
