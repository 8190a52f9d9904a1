"""The console in a real Chromium (headless, driven by Selenium) against the app served on
loopback by a real server thread. One browser for the module; each test signs in afresh."""
from __future__ import annotations

from datetime import timedelta

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import select

from hub.pipeline import process_pending
from hub.store.models import Notification, Task

from tests.console.conftest import browser_sign_in
from tests.console.test_admin import kill_notifications
from tests.helpers import store_mail


@pytest.fixture
def config_document(config_document, monkeypatch):
    """Leads from the wholesale campaign wait for the head to choose their manager; a mailbox."""
    config_document["routing"] = [{"name": "wholesale", "when": {"utm_source": ["wholesale"]},
                                   "assign": {"strategy": "manual", "by": "head"}}]
    monkeypatch.setenv("SALES_IMAP_PASSWORD", "imap-password")
    config_document["mailboxes"] = {"sales": {"host": "127.0.0.1", "username": "sales@example.com",
                                              "password_env": "SALES_IMAP_PASSWORD"}}
    return config_document


def wait_for(browser, css: str):
    return WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))


def wait_page(browser, title: str) -> None:
    """Until the page whose heading is ``title`` has loaded (a click's navigation is async)."""
    # the old page may go away between finding its heading and reading it
    WebDriverWait(browser, 10, ignored_exceptions=(WebDriverException,)).until(
        lambda b: b.find_element(By.CSS_SELECTOR, "main h1").text.startswith(title))


def test_signing_in_and_a_wrong_password(browser, live):
    browser_sign_in(browser, live, "anna", "not the password")
    assert wait_for(browser, "#sign-in-error").text == "Неверный логин или пароль."
    browser_sign_in(browser, live, "anna")
    wait_page(browser, "Мои задачи")
    assert browser.find_element(By.CSS_SELECTOR, ".who").text.startswith("Anna Petrova")
    browser.find_element(By.CSS_SELECTOR, ".signout button").click()
    wait_page(browser, "Вход")


def test_a_manager_sees_only_their_own_leads(browser, live, make_lead, hub):
    numbers = [make_lead(f"Client {i}", f"+7916222000{i}") for i in range(4)]
    with hub.db.read() as session:
        owned = set(session.scalars(select(Task.lead_id).where(Task.assignee_id == "boris")))
    browser_sign_in(browser, live, "boris")
    wait_page(browser, "Мои задачи")
    browser.get(f"{live}/console/leads")
    shown = {int(cell.text) for cell in browser.find_elements(By.CSS_SELECTOR, "table.leads tbody td:first-child a")}
    assert shown == owned and 0 < len(shown) < len(numbers)


def test_closing_a_call_task_with_no_answer_schedules_the_next_step(browser, live, make_lead, hub):
    number = make_lead()
    with hub.db.read() as session:
        task = session.scalar(select(Task).where(Task.lead_id == number))
    browser_sign_in(browser, live, task.assignee_id)
    item = wait_for(browser, f"#task-{task.id}")
    item.find_element(By.CSS_SELECTOR, 'input[value="no_answer"]').click()
    item.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".flash"))
    assert browser.find_element(By.CSS_SELECTOR, ".flash").text == "Задача закрыта."
    [step] = browser.find_elements(By.CSS_SELECTOR, ".task .kind")
    assert step.text == "перезвонить · шаг 1"
    assert "01.12.2026 11:05" in browser.find_element(By.CSS_SELECTOR, ".task .facts").text


def test_a_head_reassigns_a_lead_on_its_card(browser, live, make_lead, hub):
    number = make_lead()
    with hub.db.read() as session:
        owner = session.scalar(select(Task.assignee_id).where(Task.lead_id == number))
    other = "boris" if owner == "anna" else "anna"
    browser_sign_in(browser, live, "vera")
    wait_page(browser, "Мои задачи")
    browser.get(f"{live}/console/leads/{number}")
    Select(wait_for(browser, "#assignee")).select_by_value(other)
    browser.find_element(By.CSS_SELECTOR, "form[action$='/assignee'] button").click()
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".flash"))
    assert "vera · передана" in browser.find_element(By.CSS_SELECTOR, ".history").text
    with hub.db.read() as session:
        assert session.scalar(select(Task.assignee_id).where(Task.lead_id == number)) == other


def test_a_head_assigns_from_the_unassigned_queue(browser, live, make_lead, hub):
    number = make_lead(utm_source="wholesale")
    browser_sign_in(browser, live, "vera")
    wait_page(browser, "Мои задачи")
    wait_for(browser, ".task .button").click()  # the head's task leads to the queue
    wait_page(browser, "Без ответственного")
    wait_for(browser, f"#lead-{number} button[value=boris]").click()
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".flash"))
    assert not browser.find_elements(By.ID, f"lead-{number}")
    with hub.db.read() as session:
        tasks = [(t.kind, t.assignee_id, t.status) for t in session.scalars(
            select(Task).where(Task.lead_id == number).order_by(Task.id))]
    assert tasks == [("assign", "vera", "done"), ("call", "boris", "open")]


def test_an_admin_replays_a_dead_notification(browser, live, make_lead, hub):
    number = make_lead(email="ivan@example.com")
    kill_notifications(hub, number)
    browser_sign_in(browser, live, "ada")
    wait_page(browser, "Входящие")
    browser.get(f"{live}/console/dead")
    with hub.db.read() as session:
        email = session.scalar(select(Notification.id).where(Notification.channel == "email"))
    assert "smtp: 550 mailbox unavailable" in wait_for(browser, f"#notification-{email}").text
    browser.find_element(By.CSS_SELECTOR, f"#notification-{email} button").click()
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".flash"))
    assert not browser.find_elements(By.ID, f"notification-{email}")
    with hub.db.read() as session:
        assert session.get(Notification, email).status == "pending"


def test_an_admin_makes_a_lead_of_an_ignored_mail(browser, live, hub):
    event_id = store_mail(hub, "autoreply__auto_submitted.eml")
    process_pending(hub)
    browser_sign_in(browser, live, "ada")
    wait_page(browser, "Входящие")
    browser.find_element(By.LINK_TEXT, "Пропущенные письма").click()
    wait_for(browser, f"a[href='/console/events/{event_id}']").click()
    wait_page(browser, "Событие")
    assert "auto-reply" in browser.find_element(By.CSS_SELECTOR, "main").text
    browser.find_element(By.CSS_SELECTOR, "button[value=lead]").click()
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".flash"))
    browser.find_element(By.CSS_SELECTOR, ".facts a[href^='/console/leads/']").click()
    wait_page(browser, "Заявка")
    assert browser.find_element(By.CSS_SELECTOR, ".lead-name").text == "Иван Петров"


def test_a_silent_source_shows_its_alarm(browser, live, make_lead, hub):
    make_lead()
    later = hub.now() + timedelta(hours=7)  # the landing form's quiet_after is the default 6 h
    hub.clock = lambda: later
    browser_sign_in(browser, live, "ada")
    wait_page(browser, "Входящие")
    browser.find_element(By.LINK_TEXT, "Источники").click()
    wait_page(browser, "Источники")
    row = browser.find_element(By.ID, "source-forms-landing")
    assert "молчит с 01.12.2026 17:00" in row.text
    assert "молчит" not in browser.find_element(By.ID, "source-forms-tilda").text  # never watched yet


def test_a_lead_named_like_a_script_renders_as_text(browser, live, make_lead):
    number = make_lead("<script>alert(1)</script>")
    browser_sign_in(browser, live, "vera")
    wait_page(browser, "Мои задачи")
    browser.get(f"{live}/console/leads/{number}")
    assert wait_for(browser, ".lead-name").text == "<script>alert(1)</script>"
    assert not expected_conditions.alert_is_present()(browser)


def test_a_form_post_without_its_csrf_token_is_refused(browser, live, make_lead):
    number = make_lead()
    browser_sign_in(browser, live, "vera")
    wait_page(browser, "Мои задачи")
    browser.get(f"{live}/console/leads/{number}")
    browser.execute_script("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")
    browser.find_element(By.ID, "note").send_keys("sneaky")
    browser.find_element(By.CSS_SELECTOR, "form[action$='/note'] button").click()
    wait_page(browser, "400")
    assert "Форма устарела" in browser.find_element(By.CSS_SELECTOR, "main").text


def test_the_russian_and_the_english_page(browser, live):
    browser.get(f"{live}/console/sign-in")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ru"
    wait_page(browser, "Вход")
    browser.find_element(By.CSS_SELECTOR, "footer button").click()
    wait_page(browser, "Sign in")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert browser.find_element(By.CSS_SELECTOR, "label[for=login]").text == "Login or e-mail"
