"""The score in the console: a column and a class filter on the leads list, a block on the lead
card with the explanation, and the class buttons for heads and directors (CSRF-checked)."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from sqlalchemy import select

from hub.pipeline import score
from hub.store.models import Lead

from tests.console.conftest import browser_sign_in
from tests.console.test_browser import wait_page
from tests.console.test_screenshots import DESKTOP, PHONE, folder, shoot  # noqa: F401 (folder is a fixture)
from tests.pipeline.test_score import SCORING, seed_history
from tests.reports.test_score_reports import seed_scored


@pytest.fixture
def config_document(config_document):
    config_document["scoring"] = SCORING
    return config_document


def class_of(hub, number: int) -> str:
    with hub.db.read() as session:
        return session.scalar(select(Lead.score_class).where(Lead.id == number))


def test_the_list_shows_the_class_and_filters_by_it(console, make_lead):
    best = make_lead("Best", "+7 916 111-11-11", email="best@example.com", utm_source="yandex")
    plain = make_lead("Plain", "+7 916 222-22-22")
    vera = console("vera")
    page = vera.get("/console/leads").text
    assert '<span class="score score-A"' in page and '<span class="score score-C"' in page
    only_a = vera.get("/console/leads?class=A").text
    assert f"/console/leads/{best}" in only_a and f"/console/leads/{plain}\"" not in only_a


def test_the_list_has_no_score_column_without_scoring(config_document, request):
    del config_document["scoring"]
    console, make_lead = request.getfixturevalue("console"), request.getfixturevalue("make_lead")
    make_lead()
    page = console("vera").get("/console/leads").text
    assert "Оценка" not in page and 'class="score ' not in page


def test_the_card_explains_the_score(console, make_lead, hub):
    seed_history(hub)
    score.train(hub)
    number = make_lead("Ivan", "+7 916 123-45-67", email="ivan@example.com", utm_term="crm", budget="<b>9</b>")
    page = console("vera").get(f"/console/leads/{number}").text
    assert "Оценка" in page
    assert "+10 business hours, +10 budget given = 20 points (class B)" in page
    assert "71%" in page and "из 20 закрытых заявок" in page
    assert "<b>9</b>" not in page  # form text is escaped wherever it shows


def test_a_head_moves_the_class_with_the_buttons(console, make_lead, hub):
    number = make_lead("Ivan", "+7 916 123-45-67", email="ivan@example.com")
    vera = console("vera")
    card = vera.get(f"/console/leads/{number}").text
    assert "Класс выше" in card and "Класс ниже" in card
    assert vera.post(f"/console/leads/{number}/score", {"change": "up"}).status_code == 302
    assert class_of(hub, number) == "A"
    card = vera.get(f"/console/leads/{number}").text
    assert "Класс выше" not in card and "Вернуть рассчитанный класс" in card and "изменён класс" in card
    assert vera.post(f"/console/leads/{number}/score", {"change": "up"}).status_code == 302  # refused, said so
    assert class_of(hub, number) == "A"
    vera.post(f"/console/leads/{number}/score", {"change": "reset"})
    assert class_of(hub, number) == "B"


def test_managers_and_forged_forms_cannot_move_the_class(console, make_lead, hub):
    number = make_lead("Ivan", "+7 916 123-45-67", email="ivan@example.com")
    with hub.db.read() as session:
        owner = session.scalar(select(Lead.assignee_id).where(Lead.id == number))
    manager = console(owner)
    assert "Класс выше" not in manager.get(f"/console/leads/{number}").text
    assert manager.post(f"/console/leads/{number}/score", {"change": "up"}).status_code == 404
    vera = console("vera")
    assert vera.client.post(f"/console/leads/{number}/score", data={"change": "up"}).status_code == 400  # no token
    assert vera.post(f"/console/leads/{number}/score", {"change": "sideways"}).status_code == 404
    assert class_of(hub, number) == "B"


def shoot_section(browser, into, name: str, element_id: str) -> list:
    """The part of a long page from the element down, at both widths (a screen and a half high)."""
    files = []
    for suffix, (width, height) in (("", DESKTOP), ("-phone", PHONE)):
        browser.set_window_size(width, height * 3 // 2)
        browser.execute_script(f"document.getElementById('{element_id}').scrollIntoView()")
        path = into / f"{name}{suffix}.png"
        browser.save_screenshot(str(path))
        files.append(path)
    browser.set_window_size(*DESKTOP)
    return files


def test_screenshots_of_the_scores(browser, live, make_lead, hub, folder):  # noqa: F811
    seed_history(hub)
    score.train(hub)
    numbers = [make_lead(name, phone, email=email, utm_source=source, utm_term=term, budget=budget)
               for name, phone, email, source, term, budget in (
                   ("Иван Петров", "+7 916 123-45-67", "ivan@example.com", "yandex", "crm", "250 000"),
                   ("Мария Соколова", "+7 903 555-12-12", "maria@example.com", "google", "erp", ""),
                   ("ООО «Ромашка»", "+7 495 777-00-11", None, "yandex", "crm", ""))]
    browser_sign_in(browser, live, "vera")
    wait_page(browser, "Мои задачи")
    browser.get(f"{live}/console/leads")
    files = shoot(browser, folder, "leads-scored")
    browser.get(f"{live}/console/leads/{numbers[0]}")
    wait_page(browser, "Заявка")
    browser.find_element(By.CSS_SELECTOR, ".explanation summary").click()
    files += shoot(browser, folder, "lead-card-score")
    assert "utm_term=crm" in browser.find_element(By.CSS_SELECTOR, ".explanation p").text
    browser.get(f"{live}/console/reports")
    wait_page(browser, "Отчёты")
    files += shoot_section(browser, folder, "reports-scores", "report-scores")
    assert browser.find_elements(By.CSS_SELECTOR, "#report-scores tbody tr")
    assert all(path.stat().st_size > 10_000 for path in files)


def test_the_console_report_and_its_download(console, hub):
    seed_scored(hub)
    vera = console("vera")
    page = vera.get("/console/reports?from=2026-12-01&to=2026-12-01").text
    assert "Оценки по классам" in page and "Крупные сделки под угрозой" in page
    assert "150\xa0000" in page  # lead 2's value lost, grouped as in Russian (a no-break space)
    csv = vera.get("/console/reports/scores.csv?from=2026-12-01&to=2026-12-01").data.decode("utf-8-sig")
    assert csv.splitlines()[0] == "class,leads,converted,conversion,open,value,expected,value_lost,unestimated"
    assert csv.splitlines()[1].startswith("A,3,1,")


def test_no_scores_report_without_scoring(config_document, request):
    del config_document["scoring"]
    console = request.getfixturevalue("console")
    vera = console("vera")
    assert "Оценки по классам" not in vera.get("/console/reports").text
    assert vera.get("/console/reports/scores.csv").status_code == 404


def test_the_downloaded_list_carries_the_score(console, make_lead):
    make_lead("Best", "+7 916 111-11-11", email="best@example.com", utm_source="yandex", budget="90 000")
    lines = console("vera").get("/console/leads.csv").data.decode("utf-8-sig").splitlines()
    assert lines[0].endswith(",class,probability,value")
    assert lines[1].endswith(",A,,90000.0")  # no probability learned yet
