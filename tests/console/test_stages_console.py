"""The console and pipeline stages: the card shows the stage and its deadline and moves it (next
stage, named outcomes, any stage; CSRF checked), the list filters by stage, the reports page
shows the funnel and downloads it; in a real Chromium, the card and the funnel at desktop and
phone width."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.console.conftest import browser_sign_in
from tests.console.test_browser import wait_page
from tests.console.test_screenshots import shoot
from tests.reports.test_funnel import NOVEMBER, PIPELINES, seeded  # noqa: F401 (the seeded store)


@pytest.fixture
def config_document(config_document):
    config_document["pipelines"] = {
        **PIPELINES, "sales": {
            "stages": [{"name": "introduction", "limit": "2d",
                        "outcomes": {"refused": {"to": "lost", "label": "Отказался от встречи"}}},
                       {"name": "offer", "outcomes": {"signed": "won"}}, {"name": "invoice"}],
            "outcomes": {"won": {"to": "won", "label": "Сделка заключена"},
                         "lost": {"to": "lost", "label": "Не договорились"}}}}
    config_document["default_pipeline"] = "sales"
    return config_document


def test_the_card_shows_the_stage_and_its_deadline_and_moves_it(console, make_lead, api):
    number = make_lead()
    anna_or_boris = api.get(f"/api/leads/{number}").get_json()["assignee"]["id"]
    manager = console(anna_or_boris)
    page = manager.get(f"/console/leads/{number}").text
    assert "Следующий этап" not in page and 'name="stage"' in page  # at no stage yet: any stage, no "next"
    response = manager.post(f"/console/leads/{number}/stage", data={"stage": "introduction"})
    assert response.status_code == 302
    page = manager.get(f"/console/leads/{number}").text
    assert "<strong>introduction</strong> · sales" in page
    assert "срок 03.12.2026 11:00" in page  # entered at noon UTC+3 on 1 December, limit 2 days
    assert "Следующий этап: offer" in page
    assert 'value="refused" class="outcome outcome-lost">Отказался от встречи</button>' in page  # the labels
    assert 'value="won" class="outcome outcome-won">Сделка заключена</button>' in page
    manager.post(f"/console/leads/{number}/stage", data={"stage": "next"})
    assert 'value="signed" class="outcome outcome-won">signed</button>' in manager.get(
        f"/console/leads/{number}").text  # no label: its name
    assert api.get(f"/api/leads/{number}").get_json()["stage"]["name"] == "offer"
    manager.post(f"/console/leads/{number}/stage", data={"outcome": "signed"})
    lead = api.get(f"/api/leads/{number}").get_json()
    assert (lead["status"], lead["stage"]) == ("converted", None)
    actors = {h["actor"] for h in lead["history"] if h["action"].startswith("stage_")}
    assert actors == {anna_or_boris}


def test_moves_need_the_csrf_token_and_a_stage_the_pipeline_has(console, make_lead, api):
    number = make_lead()
    head = console("vera")
    assert head.client.post(f"/console/leads/{number}/stage", data={"stage": "offer"}).status_code == 400
    assert head.post(f"/console/leads/{number}/stage", data={"stage": "repair"}).status_code == 400
    assert head.post(f"/console/leads/{number}/stage", data={"outcome": "signed"}).status_code == 400
    assert head.post(f"/console/leads/{number}/stage", data={"stage": "offer", "outcome": "x"}).status_code == 400
    assert api.get(f"/api/leads/{number}").get_json()["stage"] is None


def test_the_list_filters_by_stage_and_shows_it(console, make_lead, api):
    first, second = make_lead(), make_lead(phone="+7 903 555-12-12")
    api.patch(f"/api/leads/{first}", json={"stage": "offer"})
    page = console("vera").get("/console/leads?stage=offer").text
    assert f'/console/leads/{first}"' in page and f'/console/leads/{second}"' not in page
    assert '<small class="stage">offer</small>' in page


def test_the_reports_page_shows_the_funnel_and_downloads_it(console, seeded):  # noqa: F811
    director = console("oleg")
    page = director.get(f"/console/reports?{NOVEMBER}").text
    assert "Воронка" in page and "sales: лидов: 6, выиграно: 1, проиграно: 1" in page
    assert '<progress max="6" value="3">3</progress>' in page  # offer, reached by 3 of 6
    body = director.get(f"/console/reports/funnel.csv?{NOVEMBER}").data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["pipeline", "stage", "entered", "reached", "conversion", "at_stage", "time_in_stage_median"]
    assert rows[1:4] == [["sales", "introduction", "6", "6", "0.5", "2", "9000.0"],
                         ["sales", "offer", "2", "3", "0.6667", "1", "36000.0"],
                         ["sales", "invoice", "2", "2", "", "1", "18000.0"]]
    assert ["sales", "won", "1", "", "", "", ""] in rows


def test_the_funnel_view_shows_one_chosen_pipeline(console, seeded):  # noqa: F811
    director = console("oleg")
    page = director.get(f"/console/reports?{NOVEMBER}").text
    assert '<option value="service" >service</option>' in page and "<h3>service:" in page and "<h3>sales:" in page
    page = director.get(f"/console/reports?{NOVEMBER}&pipeline=service").text
    assert '<option value="service" selected>service</option>' in page
    assert "<h3>service:" in page and "<h3>sales:" not in page
    assert "pipeline=service" in page  # the downloads keep the choice
    body = director.get(f"/console/reports/funnel.csv?{NOVEMBER}&pipeline=service").data.decode("utf-8-sig")
    assert {row[0] for row in list(csv.reader(io.StringIO(body)))[1:]} == {"service"}
    refused = director.get(f"/console/reports?{NOVEMBER}&pipeline=repairs")
    assert refused.status_code == 400 and "pipeline: no pipeline is called &#39;repairs&#39;" in refused.text


@pytest.fixture
def folder(tmp_path) -> Path:
    path = Path(os.environ.get("HUB_SCREENSHOTS") or tmp_path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_screenshots_of_the_card_with_its_stage_and_of_the_funnel(browser, live, make_lead, api, seeded,  # noqa: F811
                                                                 folder):
    number = make_lead("Иван Петров", "+7 916 123-45-67")
    api.patch(f"/api/leads/{number}", json={"stage": "introduction"})
    browser_sign_in(browser, live, "oleg")
    wait_page(browser, "Мои задачи")
    browser.get(f"{live}/console/leads/{number}")
    wait_page(browser, "Заявка")
    files = shoot(browser, folder, "lead-card-stage")
    assert browser.find_element(By.CSS_SELECTOR, ".lead-stage dd strong").text == "introduction"
    assert browser.find_element(By.CSS_SELECTOR, ".stage-moves button[value=next]").is_displayed()
    browser.get(f"{live}/console/reports?{NOVEMBER}")
    files += shoot(browser, folder, "funnel")
    bars = browser.find_elements(By.CSS_SELECTOR, "#report-funnel progress")
    assert [bar.get_attribute("value") for bar in bars[:3]] == ["6", "3", "2"]
    assert all(path.stat().st_size > 10_000 for path in files)
