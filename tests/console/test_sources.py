"""Sources: traffic per form, mailbox, provider, tracked number and CRM target, and the silence
alarm (in the console, /healthz, /metrics, and one e-mail to the admins each way)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hub.delivery import outbox
from hub.runtime import scheduler
from hub.store.models import Notification, SourceState

from tests.console.conftest import NOON
from tests.helpers import ZADARMA_SECRET, post_zadarma, zadarma_call


@pytest.fixture
def config_document(config_document, monkeypatch):
    monkeypatch.setenv("ZADARMA_SECRET", ZADARMA_SECRET)
    monkeypatch.setenv("SECURED_FORM_SECRET", "form-secret-value")
    config_document["forms"] = {
        "landing": {"mapping": "generic", "quiet_after": "1h"},
        "secured": {"mapping": "generic", "secret_env": "SECURED_FORM_SECRET", "quiet_after": None},
    }
    config_document["telephony"] = {
        "zadarma": {"secret_env": "ZADARMA_SECRET", "quiet_after": "2h"},
        "numbers": {"+74951234567": {"utm_source": "yandex", "quiet_after": "1d"}},
    }
    config_document["crm"] = [
        {"target": "webhook", "url": "http://127.0.0.1:9/hook?token=abc", "secret_env": "HOOK_SECRET"}
    ]
    monkeypatch.setenv("HOOK_SECRET", "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0")
    return config_document


def at(hub, moment: datetime) -> None:
    hub.clock = lambda: moment


def alarm_mails(hub) -> list[tuple[str, str]]:
    with hub.db.read() as session:
        return [
            (n.to, n.subject)
            for n in session.scalars(
                select(Notification).where(Notification.rule.like("silence:%")).order_by(Notification.id)
            )
        ]


def test_the_sources_page_counts_each_sources_traffic(console, client, make_lead, hub):
    make_lead()
    for event in zadarma_call("in_" + "a" * 40, "missed"):
        post_zadarma(client, event)
    client.post("/hooks/forms/secured", data={"phone": "+79160000000", "_secret": "wrong"})
    make_lead("Second", "+79160000002")
    page = console("ada").get("/console/sources").text
    landing = page.split('id="source-forms-landing"')[1].split("</tr>")[0]
    assert [cell.strip() for cell in landing.split("<td>")[2:5]] == ["2</td>", "2</td>", "0 / 0</td>"]
    secured = page.split('id="source-forms-secured"')[1].split("</tr>")[0]
    assert "1 / 0" in secured and "без тревоги" in secured
    number = page.split('id="source-number-74951234567"')[1].split("</tr>")[0]
    assert "<td>1</td>" in number  # one call to the tracked number
    zadarma = page.split('id="source-telephony-zadarma"')[1].split("</tr>")[0]
    assert "<td>3</td>" in zadarma  # its three webhooks
    assert "CRM <code>webhook</code>" in page


def test_a_silent_source_raises_one_alarm_and_clears_it_once(client, make_lead, hub, team, api):
    make_lead()
    scheduler.tick(hub)
    at(hub, NOON + timedelta(minutes=59))
    scheduler.tick(hub)
    assert alarm_mails(hub) == []
    at(hub, NOON + timedelta(minutes=61))
    scheduler.tick(hub)
    scheduler.tick(hub)
    assert alarm_mails(hub) == [("ada@example.com", "Lead Hub: forms/landing is silent")]
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json["sources"]["forms/landing"] == "silent since 2026-12-01T09:00:00+00:00"
    assert 'hub_source_silent{source="forms/landing"} 1.0' in client.get("/metrics").text
    make_lead("Back", "+79160000003")
    scheduler.tick(hub)
    scheduler.tick(hub)
    assert alarm_mails(hub)[1:] == [("ada@example.com", "Lead Hub: forms/landing sends events again")]
    assert client.get("/healthz").json["sources"]["forms/landing"] == "ok"
    outbox.deliver_due(hub)


def test_silence_counts_business_hours_only(config_document, hub, make_lead, team):
    hub.config.data["business_hours"] = {
        "timezone": "Europe/Moscow",
        "weekly": {day: ["09:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": [],
    }
    friday = datetime(2026, 12, 4, 14, 30, tzinfo=UTC)  # 17:30 in Moscow
    at(hub, friday)
    make_lead()
    at(hub, friday + timedelta(days=2, hours=15, minutes=59))  # Monday 09:29 in Moscow: 59 business minutes
    scheduler.tick(hub)
    assert alarm_mails(hub) == []
    at(hub, friday + timedelta(days=2, hours=16, minutes=1))
    scheduler.tick(hub)
    assert [subject for _, subject in alarm_mails(hub)] == ["Lead Hub: forms/landing is silent"]


def test_a_source_that_never_sent_anything_counts_from_when_it_was_first_watched(hub, team):
    scheduler.tick(hub)
    with hub.db.read() as session:
        assert session.get(SourceState, "forms/landing").watched_since == NOON
    at(hub, NOON + timedelta(hours=2))
    scheduler.tick(hub)
    assert "Lead Hub: forms/landing is silent" in [s for _, s in alarm_mails(hub)]
    assert "Lead Hub: forms/secured is silent" not in [s for _, s in alarm_mails(hub)]  # quiet_after: null


def test_a_silent_source_is_marked_in_the_console(console, make_lead, hub):
    make_lead()
    at(hub, NOON + timedelta(hours=3))
    page = console("ada").get("/console/sources").text
    landing = page.split('id="source-forms-landing"')[1].split("</tr>")[0]
    assert "молчит с 01.12.2026 12:00" in landing


def test_the_config_page_masks_secrets(console):
    page = console("ada").get("/console/config").text
    assert "token=abc" not in page and "http://127.0.0.1:9/hook?••••••" in page
    assert "secret_env: HOOK_SECRET" in page and "whsec_" not in page
    assert console("vera").get("/console/config").status_code == 403


def test_quiet_after_in_provider_sections_is_checked(config_document, tmp_path):
    import yaml

    from hub.runtime.cli import main

    config_document["telephony"]["zadarma"]["quiet_after"] = "soon"
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(config_document, allow_unicode=True), encoding="utf-8")
    result = CliRunner(env={"ZADARMA_SECRET": "x", "SECURED_FORM_SECRET": "x", "HOOK_SECRET": "x"}).invoke(
        main, ["check-config", str(path)]
    )
    assert result.exit_code == 1 and "telephony.zadarma.quiet_after:" in result.output
