"""The ``hub`` command: config checks, migrations, replay and the all-in-one ``hub run``."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import requests
import yaml
from click.testing import CliRunner

from hub.cli import main
from tests.conftest import insert_pending_forms


def write_yaml(path, document) -> str:
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return str(path)


def test_check_config_accepts_the_sample():
    result = CliRunner().invoke(main, ["check-config"], env={"HUB_CONFIG": ""})
    assert result.exit_code == 0
    assert result.output.strip().endswith("sample.yaml: ok")


def test_check_config_lists_every_problem_by_key(tmp_path, config_document):
    config_document["team"][0]["role"] = "boss"
    config_document["forms"]["landing"]["mapping"] = "typeform"
    config_document["forms"]["landing"]["secret_env"] = "NOT_SET_ANYWHERE"
    config_document["limits"] = {"duplicate_window": "five minutes"}
    config_document["confirmations"][0]["text"] = "Номер {lead_id}"
    path = write_yaml(tmp_path / "bad.yaml", config_document)
    result = CliRunner().invoke(main, ["check-config", path])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert "team.0.role: Must be one of: manager, head, director." in lines
    assert any(line.startswith("limits.duplicate_window: not a duration") for line in lines)
    assert len(lines) == 2  # schema errors stop before the semantic checks
    config_document["team"][0]["role"] = "manager"
    config_document["limits"] = {}
    path = write_yaml(tmp_path / "bad.yaml", config_document)
    lines = CliRunner().invoke(main, ["check-config", path]).output.strip().splitlines()
    assert sorted(lines) == [
        "confirmations.0.text: bad placeholder 'lead_id'",
        "forms.landing.mapping: unknown mapping 'typeform' (one of cf7, generic, tilda)",
        "forms.landing.secret_env: environment variable NOT_SET_ANYWHERE is not set"]


def test_check_config_reports_unreadable_files(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("team: [unclosed", encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", str(broken)])
    assert result.exit_code == 1 and result.output.startswith("config: not valid YAML")
    missing = CliRunner().invoke(main, ["check-config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and "file not found" in missing.output


def test_db_upgrade_creates_the_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = CliRunner().invoke(main, ["db", "upgrade"], env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    from sqlalchemy import create_engine, inspect
    assert "raw_events" in inspect(create_engine(url)).get_table_names()


def test_replay_command(hub, monkeypatch, tmp_path, config_document, database_url, redis_url):
    monkeypatch.setenv("HUB_CONFIG", write_yaml(tmp_path / "hub.yaml", config_document))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    insert_pending_forms(hub, ["+79161234567"])
    from hub.pipeline import process_pending
    process_pending(hub)
    from hub.models import RawEvent
    with hub.db.read() as session:
        event_id = session.query(RawEvent.event_id).scalar()
    result = CliRunner().invoke(main, ["replay", event_id])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{event_id} processed lead 1"
    unknown = CliRunner().invoke(main, ["replay", "nope"])
    assert unknown.exit_code == 1 and "no event nope" in unknown.output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_json(url, headers=None, until=lambda body: True, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, headers=headers, timeout=10)
            if response.ok and until(response.json()):
                return response.json()
        except requests.RequestException:  # not up yet, or busy
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer as expected in {timeout}s")


def test_hub_run_works_with_no_configuration(tmp_path):
    """What a new user does: start it in an empty folder, post a form, read the lead back."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "HUB_CONFIG", "PROMETHEUS_MULTIPROC_DIR")}
    env.update(HUB_PORT=str(port), HUB_API_TOKEN="t0ken", HUB_SMS_LOG=str(tmp_path / "sms.jsonl"))
    hub_run = subprocess.Popen([sys.executable, "-m", "hub", "run"], cwd=tmp_path, env=env)
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": "Bearer t0ken"}
    try:
        assert wait_json(f"{base}/healthz") == {"db": "ok", "redis": "ok"}
        form = {"name": "Ivan", "phone": "+7 916 123-45-67", "utm_source": "yandex",
                "utm_medium": "cpc", "utm_campaign": "brand", "gclid": "EAIaIQ"}
        posted = requests.post(f"{base}/hooks/forms/landing", data=form,
                               headers={"Referer": "https://site.example/?utm_term=crm"}, timeout=5)
        assert posted.status_code == 202
        event = wait_json(f"{base}/api/events/{posted.json()['event_id']}", auth,
                          until=lambda body: body["status"] == "processed")
        lead = wait_json(f"{base}/api/leads/{event['lead_number']}", auth,
                         until=lambda body: body["notifications"][0]["status"] == "sent")
        assert (lead["source"]["utm_source"], lead["source"]["gclid"], lead["source"]["utm_term"]) == (
            "yandex", "EAIaIQ", "crm")
        assert lead["assignee"]["id"] in ("anna", "boris")
        assert f"Номер {lead['number']}" in lead["notifications"][0]["text"]
        sms = [json.loads(line) for line in (tmp_path / "sms.jsonl").read_text().splitlines()]
        assert sms[0]["to"] == "+79161234567"
        assert (tmp_path / "instance" / "hub.db").is_file()
    finally:
        hub_run.send_signal(signal.SIGINT)
        assert hub_run.wait(timeout=30) == 0
    with socket.socket() as probe:  # everything it started is gone: nothing listens any more
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
