"""SMS through the hub: inbound leads, confirmations exactly once, quiet hours, delivery
reports, gateway failures and the e-mail fallback."""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import requests
import responses
from sqlalchemy import select

from hub.delivery import outbox
from hub.delivery.replay import replay_notifications
from hub.runtime import scheduler
from hub.store.models import Notification

from tests.connectors import signers

TOKEN, SID = "twilio-test-token", "AC3f2b5e8a9c1d4e6f7a8b9c0d1e2f3a4b"
API = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
HOOK = "http://localhost/hooks/sms/twilio"


@pytest.fixture
def sms(config_document, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setenv("SMSRU_API_ID", "smsru-api-id")
    config_document["sms"] = {
        "inbound": {"twilio": {"auth_token_env": "TWILIO_AUTH_TOKEN"}, "smsru": {"api_id_env": "SMSRU_API_ID"}},
        "sender": "twilio",
        "quiet_hours": None,
        "twilio": {
            "account_sid_env": "TWILIO_ACCOUNT_SID",
            "auth_token_env": "TWILIO_AUTH_TOKEN",
            "from": "+15005550006",
        },
    }
    config_document["confirmations"] = [
        {"channel": "sms", "when": {"channel": ["form", "sms"]}, "text": "Ваша заявка принята в работу. Номер {number}"}
    ]


def twilio_post(client, params: dict):
    body = urlencode(params)
    return client.post(
        "/hooks/sms/twilio",
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signers.twilio(HOOK, body.encode(), TOKEN)},
    )


def inbound_sms(sid: str, body: str, sender="+79161234567") -> dict:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": SID,
        "From": sender,
        "To": "+74951234567",
        "Body": body,
        "NumMedia": "0",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }


def accepted(mocked, sid="SMout1"):
    mocked.add(responses.POST, API, status=201, json={"sid": sid, "status": "queued", "to": "+79161234567"})


def rows(hub, channel=None) -> list[Notification]:
    with hub.db.read() as session:
        query = select(Notification).order_by(Notification.id)
        if channel:
            query = query.where(Notification.channel == channel)
        return list(session.scalars(query))


def test_inbound_sms_is_a_lead_and_a_reply_lands_on_it(sms, client, run_jobs, api):
    with responses.RequestsMock() as mocked:
        accepted(mocked)
        first = twilio_post(client, inbound_sms("SMin1", "Нужна консультация"))
        assert first.status_code == 200 and first.data.endswith(b"<Response/>")
        run_jobs()
        reply = twilio_post(client, inbound_sms("SMin2", "Спасибо, жду звонка"))
        run_jobs()
    [lead] = api.get("/api/leads?phone=+79161234567").get_json()["items"]
    assert lead["channel"] == "sms" and lead["message"] == "Нужна консультация"
    assert [t["details"]["text"] for t in lead["touches"]] == ["Нужна консультация", "Спасибо, жду звонка"]
    assert lead["source"]["called_number"] == "+74951234567"
    [sent] = lead["notifications"]
    assert (sent["status"], sent["text"]) == ("sent", f"Ваша заявка принята в работу. Номер {lead['number']}")
    assert reply.headers["X-Hub-Event-Id"]


def test_confirmation_goes_out_once_and_the_delivery_report_is_recorded(sms, client, run_jobs, api, hub):
    with responses.RequestsMock() as mocked:
        accepted(mocked, "SMconfirm1")
        client.post("/hooks/forms/landing", data={"phone": "+79161234567"})
        run_jobs()
        client.post("/hooks/forms/landing", data={"phone": "+79161234567", "message": "again"})
        run_jobs()
        sends = [c for c in mocked.calls if c.request.url == API]
        assert len(sends) == 1
        assert sends[0].request.headers["I-Twilio-Idempotency-Token"] == "lead-1-notification-1"
    report = {
        "MessageSid": "SMconfirm1",
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
        "AccountSid": SID,
        "To": "+79161234567",
        "From": "+15005550006",
    }
    assert twilio_post(client, report).status_code == 200
    run_jobs()
    assert rows(hub)[0].status == "delivered"


@pytest.fixture
def smsru(config_document, monkeypatch):
    monkeypatch.setenv("SMSRU_API_ID", "smsru-api-id")
    config_document["sms"] = {
        "inbound": {"smsru": {"api_id_env": "SMSRU_API_ID"}},
        "sender": "smsru",
        "quiet_hours": None,
        "smsru": {"api_id_env": "SMSRU_API_ID"},
    }


def test_smsru_status_callback_marks_failure(smsru, client, run_jobs, hub):
    with responses.RequestsMock() as mocked:
        mocked.add(
            responses.POST,
            "https://sms.ru/sms/send",
            json={
                "status": "OK",
                "status_code": 100,
                "balance": 10.0,
                "sms": {"79161234567": {"status": "OK", "status_code": 100, "sms_id": "000000-10000002"}},
            },
        )
        client.post("/hooks/forms/landing", data={"phone": "+79161234567"})
        run_jobs()
    records = ["sms_status\n000000-10000002\n104\n1741937100"]
    digest = signers.smsru("smsru-api-id", records)
    answer = client.post("/hooks/sms/smsru", data={"data[0]": records[0], "hash": digest})
    assert (answer.status_code, answer.data) == (200, b"100")
    run_jobs()
    row = rows(hub, "sms")[0]
    assert (row.status, row.provider_message_id) == ("undelivered", "000000-10000002")
    assert row.last_error == "delivery failed: SMS.ru status 104: cannot be delivered: lifetime expired"


def test_gateway_down_then_back(sms, client, run_jobs, hub):
    with responses.RequestsMock() as mocked:
        mocked.add(responses.POST, API, status=503, json={"code": 20503, "message": "Service unavailable"})
        client.post("/hooks/forms/landing", data={"phone": "+79161234567"})
        run_jobs()
    [row] = rows(hub)
    assert (row.status, row.attempts) == ("failed", 1)
    with responses.RequestsMock() as mocked:
        mocked.add(
            responses.POST,
            API,
            status=429,
            headers={"Retry-After": "120"},
            json={"code": 20429, "message": "Too Many Requests"},
        )
        moment = row.next_attempt_at + timedelta(seconds=1)
        hub.clock = lambda: moment
        outbox.deliver_due(hub)
    [row] = rows(hub)
    assert row.next_attempt_at - moment >= timedelta(seconds=120)  # Retry-After honoured
    with responses.RequestsMock() as mocked:
        accepted(mocked)
        moment = row.next_attempt_at + timedelta(seconds=1)
        hub.clock = lambda: moment
        scheduler.tick(hub)
        run_jobs()
    assert [(r.status, r.attempts) for r in rows(hub)] == [("sent", 3)]


def test_permanent_error_is_dead_replayable_and_falls_back_to_email(sms, client, run_jobs, hub, logs, api):
    with responses.RequestsMock() as mocked:
        mocked.add(
            responses.POST,
            API,
            status=400,
            json={"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400},
        )
        client.post("/hooks/forms/landing", data={"phone": "+79161234567", "email": "ivan@example.com"})
        run_jobs()
    sms_row, email_row = rows(hub)
    assert (sms_row.status, sms_row.last_error) == (
        "dead",
        "Twilio 21211: The 'To' number is not a valid phone number.",
    )
    assert (email_row.channel, email_row.rule, email_row.status) == ("email", "confirmations.0:fallback", "sent")
    [mail] = [json.loads(line) for line in logs["mail"].read_text().splitlines()]
    assert mail["to"] == "ivan@example.com" and mail["text"].endswith("Номер 1")
    assert api.get("/api/leads/1").get_json()["notifications"][0]["status"] == "dead"
    with responses.RequestsMock() as mocked:
        accepted(mocked)
        assert replay_notifications(hub) == 1
        run_jobs()
    assert rows(hub)[0].status == "sent"


def test_too_long_for_the_segment_limit(sms, client, run_jobs, hub):
    hub.config["confirmations"][0]["text"] = "Здравствуйте, {name}! " + "Ваша заявка принята. " * 20 + "{number}"
    hub.config["sms"]["max_segments"] = 2
    client.post("/hooks/forms/landing", data={"phone": "+79161234567", "name": "Иван"})
    run_jobs()
    [row] = rows(hub)
    assert row.status == "dead" and "UCS-2 segments, over sms.max_segments (2)" in row.last_error


def at(hub, moment: datetime):
    hub.clock = lambda: moment


def test_quiet_hours_in_the_clients_time_zone(sms, client, run_jobs, hub):
    hub.config["sms"]["quiet_hours"] = "21:00-09:00"
    instant = datetime(2026, 11, 25, 20, 30, tzinfo=UTC)  # 23:30 Moscow, 06:30 Vladivostok
    at(hub, instant)
    client.post("/hooks/forms/landing", data={"phone": "+74951234567"})  # a Moscow number
    client.post("/hooks/forms/landing", data={"phone": "+74232123456"})  # a Vladivostok number
    run_jobs()
    moscow, vladivostok = rows(hub)
    assert moscow.status == vladivostok.status == "pending"
    assert moscow.next_attempt_at == datetime(2026, 11, 26, 6, 0, tzinfo=UTC)  # 09:00 MSK
    assert vladivostok.next_attempt_at == datetime(2026, 11, 25, 23, 0, tzinfo=UTC)  # 09:00 VLAT
    with responses.RequestsMock() as mocked:
        accepted(mocked)
        at(hub, datetime(2026, 11, 25, 23, 0, 1, tzinfo=UTC))
        outbox.deliver_due(hub)
        assert [r.status for r in rows(hub)] == ["pending", "sent"]
        at(hub, datetime(2026, 11, 26, 6, 0, 1, tzinfo=UTC))
        outbox.deliver_due(hub)
    assert [r.status for r in rows(hub)] == ["sent", "sent"]


def test_the_lead_shows_the_clients_local_time(sms, client, run_jobs, api, hub):
    at(hub, datetime(2026, 11, 25, 20, 30, tzinfo=UTC))
    hub.config["sms"]["sender"] = "log"
    client.post("/hooks/forms/landing", data={"phone": "+74232123456"})
    run_jobs()
    lead = api.get("/api/leads/1").get_json()
    assert (lead["client_timezone"], lead["client_local_time"]) == ("Asia/Vladivostok", "2026-11-26T06:30+10:00")


def test_a_worker_killed_mid_send(sms, client, run_jobs, hub, monkeypatch):
    """Without an idempotency key the row becomes ``unknown``; with one it is retried."""
    from connectors.sms import twilio as twilio_sms
    from hub import registry

    kick = hub.kicker.kick
    hub.kicker.kick = lambda job, force=False: job != "outbox" and kick(job, force)
    client.post("/hooks/forms/landing", data={"phone": "+79161234567"})
    run_jobs()
    outbox.claim_due(hub)  # claimed, then the worker died before recording the answer
    at(hub, hub.now() + timedelta(minutes=11))
    scheduler.tick(hub)
    assert rows(hub)[0].status == "unknown"

    class IdempotentTwilio:
        IDEMPOTENT, send = True, staticmethod(twilio_sms.send)

    monkeypatch.setitem(registry.SENDERS, ("sms", "twilio"), IdempotentTwilio)
    with hub.db.write() as session:
        session.execute(Notification.__table__.update().values(status="sending"))
    at(hub, hub.now() + timedelta(minutes=11))
    scheduler.tick(hub)
    assert rows(hub)[0].status == "failed"
    with responses.RequestsMock() as mocked:
        accepted(mocked)
        outbox.deliver_due(hub)
        assert mocked.calls[0].request.headers["I-Twilio-Idempotency-Token"] == "lead-1-notification-1"
    assert rows(hub)[0].status == "sent"


@pytest.fixture
def shared_key(sms, config_document, monkeypatch):
    """A Twilio Webhook Setting signs with its own SharedKey (here with HMAC-SHA256)."""
    monkeypatch.setenv("TWILIO_WEBHOOK_SHARED_KEY", "webhook-shared-key-secret")
    config_document["sms"]["inbound"]["twilio"]["shared_key_env"] = "TWILIO_WEBHOOK_SHARED_KEY"
    return "webhook-shared-key-secret"


def test_a_json_webhook_signed_with_a_shared_key_is_a_lead(shared_key, client, run_jobs, api, hub):
    body = json.dumps(inbound_sms("SMjson1", "Нужна консультация"), ensure_ascii=False).encode()
    path = f"/hooks/sms/twilio?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = signers.twilio(f"http://localhost{path}", b"", shared_key, hashlib.sha256)
    headers = {
        "X-Twilio-Signature": signature,
        "X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_01hx3k4m5n,algorithm=HMAC_SHA256",
    }
    forged = body.replace("консультация".encode(), "скидка".encode())
    assert client.post(path, data=forged, content_type="application/json", headers=headers).status_code == 403
    with responses.RequestsMock() as mocked:
        accepted(mocked)
        response = client.post(path, data=body, content_type="application/json", headers=headers)
        assert response.status_code == 200 and response.data.endswith(b"<Response/>")
        run_jobs()
    [lead] = api.get("/api/leads?phone=+79161234567").get_json()["items"]
    assert (lead["channel"], lead["message"]) == ("sms", "Нужна консультация")
    assert [t["details"]["message_id"] for t in lead["touches"]] == ["SMjson1"]


def test_bad_twilio_signature(sms, client, hub):
    params = inbound_sms("SMbad", "hi")
    response = client.post("/hooks/sms/twilio", data=params, headers={"X-Twilio-Signature": "AAAA"})
    assert response.status_code == 403
    assert rows(hub) == []


def test_connection_errors_are_retried(sms, client, run_jobs, hub):
    with responses.RequestsMock() as mocked:
        mocked.add(responses.POST, API, body=requests.exceptions.ConnectionError("no route"))
        client.post("/hooks/forms/landing", data={"phone": "+79161234567"})
        run_jobs()
    assert rows(hub)[0].status == "failed"
