"""The console's fixtures: a team with every role and a password each, a client signed in as
one of them, and leads made the way the hub makes them (a form post, then the pipeline)."""
from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from werkzeug.security import generate_password_hash

from hub.store.models import ConsoleUser

from tests.helpers import snapshot_every_day

PASSWORD = "correct horse battery"
# A Tuesday, 11:00 in Moscow: inside business hours and outside quiet hours.
NOON = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ADMIN = {"id": "ada", "name": "Ada Admin", "role": "admin", "email": "ada@example.com"}


@pytest.fixture
def config_document(config_document):
    config_document["team"].append(dict(ADMIN))
    return config_document


@pytest.fixture(scope="session")
def password_hash() -> str:
    """Hashed once: scrypt is slow on purpose."""
    return generate_password_hash(PASSWORD, method="scrypt")


@pytest.fixture
def team(hub, password_hash):
    """Every team member can sign in with ``PASSWORD``; the hub's clock stands still."""
    hub.clock = lambda: NOON
    with hub.db.write() as session:
        session.add_all(ConsoleUser(member_id=member["id"], password_hash=password_hash, updated_at=NOON)
                        for member in hub.config["team"])
    return {member["id"]: member for member in hub.config["team"]}


def csrf_token(page: bytes) -> str:
    return re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()


class Console:
    """A test client signed in as one team member; ``post`` carries the page's CSRF token."""

    def __init__(self, client):
        self.client = client
        self.token = None

    def sign_in(self, login: str, password: str = PASSWORD):
        self.token = csrf_token(self.client.get("/console/sign-in").data)
        response = self.client.post("/console/sign-in", data={
            "login": login, "password": password, "csrf_token": self.token})
        if response.status_code == 302:  # signing in starts a new session, with a new token
            self.token = csrf_token(self.client.get("/console/leads").data)
        return response

    def get(self, path, **kwargs):
        return self.client.get(path, **kwargs)

    def post(self, path, data=None, **kwargs):
        return self.client.post(path, data={"csrf_token": self.token, **(data or {})}, **kwargs)


@pytest.fixture
def console(app, team):
    def signed_in(member_id: str) -> Console:
        session = Console(app.test_client())
        response = session.sign_in(member_id)
        assert response.status_code == 302, response.data
        return session
    return signed_in


@pytest.fixture
def make_lead(client, run_jobs, hub):
    """A lead from a form post; returns its number."""
    from sqlalchemy import select

    from hub.store.models import RawEvent

    def make(name="Ivan Petrov", phone="+7 916 123-45-67", **fields) -> int:
        response = client.post("/hooks/forms/landing", data={"name": name, "phone": phone, **fields})
        assert response.status_code == 202, response.data
        run_jobs()
        with hub.db.read() as session:
            return session.scalar(select(RawEvent.lead_id).where(RawEvent.event_id == response.json["event_id"]))
    return make


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,900")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One real Chromium per test module (Debian's chromium and chromium-driver)."""
    import os

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    assert not missing, f"the browser tests need Debian's chromium and chromium-driver ({missing} missing)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def live(hub, team, browser):
    """The app served by a real server thread on loopback; the browser starts signed out."""
    import threading

    from werkzeug.serving import make_server

    from hub.web.app import create_app

    server = make_server("127.0.0.1", 0, create_app({"hub": hub}), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    browser.get(f"{base}/console/sign-in")
    browser.delete_all_cookies()  # cookies ignore the port: the previous test's server used this host too
    yield base
    server.shutdown()
    thread.join()


def browser_sign_in(browser, base: str, login: str, password: str = PASSWORD) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{base}/console/sign-in")
    browser.find_element(By.ID, "login").send_keys(login)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()


@pytest.fixture
def settle():
    """The reports pages read the seeded months from their snapshots, as a running hub does
    (tests/reports checks the tables give the same answers)."""
    return snapshot_every_day
