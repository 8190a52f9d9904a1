"""Screenshots of the main pages, at desktop and at phone width, from a real Chromium.
``make screenshots`` keeps them in docs/screenshots/ (``HUB_SCREENSHOTS``); otherwise they go
to a temporary folder and the test checks that every page rendered."""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from sqlalchemy import select

from hub.store.models import Task

from tests.console.conftest import browser_sign_in
from tests.console.test_browser import wait_page

DESKTOP, PHONE = (1280, 900), (390, 844)


@pytest.fixture
def folder(tmp_path) -> Path:
    path = Path(os.environ.get("HUB_SCREENSHOTS") or tmp_path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def shoot(browser, folder: Path, name: str) -> list[Path]:
    """The whole page at both widths; returns the files."""
    files = []
    for suffix, (width, height) in (("", DESKTOP), ("-phone", PHONE)):
        browser.set_window_size(width, height)
        full = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(width, min(max(height, full + 140), 2400))
        path = folder / f"{name}{suffix}.png"
        browser.save_screenshot(str(path))
        files.append(path)
    browser.set_window_size(*DESKTOP)
    return files


def test_screenshots_of_the_main_pages(browser, live, make_lead, hub, folder):
    numbers = [make_lead(name, phone, email=email, utm_source=source, utm_campaign="winter")
               for name, phone, email, source in (
                   ("Иван Петров", "+7 916 123-45-67", "ivan@example.com", "yandex"),
                   ("Мария Соколова", "+7 903 555-12-12", "maria@example.com", "google"),
                   ("ООО «Ромашка»", "+7 495 777-00-11", None, "yandex"))]
    with hub.db.read() as session:
        owner = session.scalar(select(Task.assignee_id).where(Task.lead_id == numbers[0]))
    browser_sign_in(browser, live, owner)
    wait_page(browser, "Мои задачи")
    files = shoot(browser, folder, "my-tasks")
    browser.get(f"{live}/console/leads")
    files += shoot(browser, folder, "leads")
    browser.get(f"{live}/console/leads/{numbers[0]}")
    wait_page(browser, "Заявка")
    files += shoot(browser, folder, "lead-card")
    assert browser.find_element(By.CSS_SELECTOR, ".lead-name").text == "Иван Петров"
    browser.get(f"{live}/console/sign-in")
    browser.delete_all_cookies()
    browser_sign_in(browser, live, "ada")
    wait_page(browser, "Входящие")
    files += shoot(browser, folder, "inbox")
    later = hub.now() + timedelta(hours=7)
    hub.clock = lambda: later
    browser.get(f"{live}/console/sources")
    wait_page(browser, "Источники")
    files += shoot(browser, folder, "sources")
    browser.get(f"{live}/console/reports")
    wait_page(browser, "Отчёты")
    files += shoot(browser, folder, "reports")
    assert all(path.stat().st_size > 10_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in files)
