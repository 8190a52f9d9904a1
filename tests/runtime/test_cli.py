"""The ``hub`` command: config checks, migrations, replay and the all-in-one ``hub run``."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest
import requests
import yaml
from click.testing import CliRunner

from hub.runtime.cli import main

from tests.helpers import free_port, insert_pending_forms


def write_yaml(path, document) -> str:
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return str(path)


def test_check_config_accepts_the_sample():
    result = CliRunner().invoke(main, ["check-config"], env={"HUB_CONFIG": ""})
    assert result.exit_code == 0
    assert result.output.strip().endswith("sample.yaml: ok")


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
    from hub.store.models import RawEvent
    with hub.db.read() as session:
        event_id = session.query(RawEvent.event_id).scalar()
    result = CliRunner().invoke(main, ["replay", event_id])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{event_id} processed lead 1"
    unknown = CliRunner().invoke(main, ["replay", "nope"])
    assert unknown.exit_code == 1 and "no event nope" in unknown.output


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


NIGHT, DAY = "2026-12-01T02:30:00+03:00", "2026-12-01T11:00:00+03:00"  # a Tuesday in Moscow


@pytest.mark.parametrize("clock_start", [DAY, NIGHT])
def test_hub_run_works_with_no_configuration(tmp_path, clock_start):
    """What a new user does: start it in an empty folder, post a form, read the lead back. By
    day the confirmation SMS goes at once; at night it is held for the morning, and says so."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in (
        "DATABASE_URL", "REDIS_URL", "HUB_CONFIG", "PROMETHEUS_MULTIPROC_DIR", "HUB_CLOCK_ANCHOR")}
    env.update(HUB_PORT=str(port), HUB_API_TOKEN="t0ken", HUB_SMS_LOG=str(tmp_path / "sms.jsonl"),
               HUB_CLOCK_START=clock_start)
    hub_run = subprocess.Popen([sys.executable, "-m", "hub", "run"], cwd=tmp_path, env=env,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": "Bearer t0ken"}
    try:
        health = wait_json(f"{base}/healthz")
        assert (health["db"], health["redis"], health["sources"]["forms/landing"]) == ("ok", "ok", "ok")
        assert_web_yields_to_the_worker(hub_run.pid)
        form = {"name": "Ivan", "phone": "+7 916 123-45-67", "utm_source": "yandex",
                "utm_medium": "cpc", "utm_campaign": "brand", "gclid": "EAIaIQ"}
        posted = requests.post(f"{base}/hooks/forms/landing", data=form,
                               headers={"Referer": "https://site.example/?utm_term=crm"}, timeout=5)
        assert posted.status_code == 202
        event = wait_json(f"{base}/api/events/{posted.json()['event_id']}", auth,
                          until=lambda body: body["status"] == "processed")
        expected = "sent" if clock_start == DAY else "pending"
        lead = wait_json(f"{base}/api/leads/{event['lead_number']}", auth,
                         until=lambda body: body["notifications"][0]["status"] == expected)
        assert (lead["source"]["utm_source"], lead["source"]["gclid"], lead["source"]["utm_term"]) == (
            "yandex", "EAIaIQ", "crm")
        assert lead["assignee"]["id"] in ("anna", "boris")
        created = datetime.fromisoformat(lead["created_at"])  # the whole tree shares one clock
        assert timedelta(0) <= created - datetime.fromisoformat(clock_start) < timedelta(minutes=5)
        sms = lead["notifications"][0]
        assert f"Номер {lead['number']}" in sms["text"]
        if clock_start == DAY:
            sent = [json.loads(line) for line in (tmp_path / "sms.jsonl").read_text().splitlines()]
            assert sent[0]["to"] == "+79161234567" and sms["held_until"] is None
        else:
            assert sms["held_until"] == "2026-12-01T06:00:00+00:00"  # 09:00 in Moscow
            assert sms["reason"] == "quiet hours 21:00-09:00 in the client's time zone (Europe/Moscow)"
            assert not (tmp_path / "sms.jsonl").exists()
        assert (tmp_path / "instance" / "hub.db").is_file()
    finally:
        os.killpg(hub_run.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground group
        assert hub_run.wait(timeout=30) == 0
    assert_quiet(hub_run.stderr.read())
    with socket.socket() as probe:  # everything it started is gone: nothing listens any more
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


def descendants(pid: int) -> dict[int, str]:
    """{pid: command line} of every process below ``pid``."""
    parents, commands = {}, {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                commands[int(entry)] = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except (ValueError, OSError):  # not a process, or one that just ended
            continue
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found[child] = commands.get(child, "")
                frontier.append(child)
    return found


def assert_web_yields_to_the_worker(supervisor: int) -> None:
    """Under ``hub run`` the web processes (the server and each of its workers) run at a lower
    CPU priority than the worker, which keeps its own."""
    base = os.getpriority(os.PRIO_PROCESS, supervisor)
    tree = descendants(supervisor)
    web = [pid for pid, command in tree.items() if " hub web" in command or "multiprocessing" in command]
    worker = [pid for pid, command in tree.items() if " hub worker" in command]
    assert len(web) >= 3 and len(worker) == 1, tree  # the server and its two worker processes
    assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in web} == {min(19, base + 8)}
    assert os.getpriority(os.PRIO_PROCESS, worker[0]) == base


@pytest.mark.parametrize("given", ["20", "-1", "high", "8.5"])
def test_the_web_niceness_is_checked(given):
    from hub.runtime.serve import web_niceness

    assert web_niceness({}) == 0 and web_niceness({"HUB_WEB_NICE": " 8 "}) == 8
    with pytest.raises(SystemExit, match="HUB_WEB_NICE: a niceness from 0 to 19"):
        web_niceness({"HUB_WEB_NICE": given})


def assert_quiet(output: str) -> None:
    """A clean start and a clean Ctrl-C print what an operator needs, and nothing else."""
    lines = output.splitlines()
    for noise in ("alembic", "Aborted!", "shutdown failed", "Traceback", "Worker rq:", "Listening at"):
        assert not [line for line in lines if noise in line], f"{noise!r} in the output:\n{output}"
    assert len(lines) <= 8, output
