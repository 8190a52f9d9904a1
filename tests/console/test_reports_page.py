"""The reports page: who may open it, its downloads, and in a real Chromium its charts drawn
from the same numbers as ``/api/reports/…``."""
from __future__ import annotations

import csv
import io

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.console.conftest import browser_sign_in
from tests.reports.test_reports import NOVEMBER, seeded  # noqa: F401 (the seeded store with known answers)

QUERY = f"{NOVEMBER}&by=utm_source"


def test_managers_may_not_open_reports(console, seeded):  # noqa: F811
    assert console("anna").get("/console/reports").status_code == 403
    assert console("vera").get(f"/console/reports?{QUERY}").status_code == 200


def test_dimensions_are_named_in_the_pages_language(console, seeded):  # noqa: F811
    page = console("vera").get(f"/console/reports?{QUERY}").text
    assert "Каналы и кампании: UTM-источник" in page
    assert '<option value="click_id" >метка клика (gclid, yclid)</option>' in page


def test_channel_and_click_id_values_are_named_in_the_pages_language(console, seeded, api):  # noqa: F811
    director = console("oleg")
    page = director.get(f"/console/reports?{NOVEMBER}").text
    assert [row["key"] for row in api.get(f"/api/reports/channels?{NOVEMBER}").json["rows"]] == ["form", "call",
                                                                                                  "mail"]
    assert '<th scope="row">форма</th>' in page and '<th scope="row">звонок</th>' in page
    assert '<th scope="row">почта</th>' in page and '<th scope="row">form</th>' not in page
    assert '<option value="call" >звонок</option>' in page  # the channel filter
    clicks = director.get(f"/console/reports?{NOVEMBER}&by=click_id").text
    assert '<th scope="row">с меткой клика</th>' in clicks and '<th scope="row">без метки клика</th>' in clicks
    director.post("/console/language", data={"locale": "en"})
    english = director.get(f"/console/reports?{NOVEMBER}&by=click_id&channel=form").text
    assert '<th scope="row">with a click id</th>' in english
    assert '<option value="form" selected>form</option>' in english


def test_a_bad_period_is_a_400_naming_it(console, seeded):  # noqa: F811
    page = console("oleg").get("/console/reports?from=2026-13-01")
    assert page.status_code == 400 and "from: a date, YYYY-MM-DD" in page.text


def test_each_report_downloads_as_csv(console, seeded):  # noqa: F811
    director = console("oleg")
    body = director.get(f"/console/reports/channels.csv?{QUERY}").data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["utm_source", "leads", "converted", "conversion", "first_response_median"]
    assert rows[1:] == [
        ["yandex", "3", "0", "0.0", "120.0"],
        ["google", "2", "2", "1.0", "45.0"],
        ["", "2", "0", "0.0", "600.0"],
    ]
    managers = list(
        csv.reader(io.StringIO(director.get(f"/console/reports/managers.csv?{NOVEMBER}").data.decode("utf-8-sig")))
    )
    assert managers[1][:3] == ["anna", "4", "1"]
    assert director.get("/console/reports/timeseries.xlsx").status_code == 200
    assert director.get("/console/reports/weather.csv").status_code == 404


def test_the_page_draws_its_charts_with_the_numbers_of_the_json_report(browser, live, seeded, api):  # noqa: F811
    browser_sign_in(browser, live, "oleg")
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".who"))
    browser.get(f"{live}/console/reports?{QUERY}")
    for chart in ("chart-channels", "chart-managers", "chart-timeseries"):
        drawn = WebDriverWait(browser, 10).until(
            lambda b, c=chart: b.execute_script(
                "var chart = window.Chart && Chart.getChart(arguments[0]); if (!chart) return null;"
                "var canvas = chart.canvas, context = canvas.getContext('2d');"
                "var pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;"
                "for (var i = 3; i < pixels.length; i += 4) if (pixels[i]) return chart.data.datasets.map(d => d.data);"
                "return null;",
                c,
            )
        )
        assert drawn, chart
    expected = api.get(f"/api/reports/channels?{QUERY}").json["rows"]
    table = [
        [cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")][:2]
        for row in browser.find_elements(By.CSS_SELECTOR, "#report-channels tbody tr")
    ]
    assert table == [[row["key"] or "—", str(row["leads"])] for row in expected]
    plotted = browser.execute_script(
        "var c = Chart.getChart('chart-channels'); return [c.data.labels, c.data.datasets[0].data]"
    )
    assert plotted == [[row["key"] or "—" for row in expected], [row["leads"] for row in expected]]
    managers = api.get(f"/api/reports/managers?{NOVEMBER}").json["rows"]
    assert browser.execute_script("return Chart.getChart('chart-managers').data.datasets[0].data") == [
        row["leads"] for row in managers
    ]
    series = api.get(f"/api/reports/timeseries?{NOVEMBER}").json["series"]
    assert browser.execute_script("return Chart.getChart('chart-timeseries').data.datasets.map(d => d.data)") == list(
        series.values()
    )


NAMES = {"form": "форма", "call": "звонок", "mail": "почта", None: "—"}


def test_the_russian_page_names_channels_in_its_table_and_chart_with_the_json_reports_numbers(
        browser, live, seeded, api):  # noqa: F811
    browser_sign_in(browser, live, "oleg")
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".who"))
    browser.get(f"{live}/console/reports?{NOVEMBER}&by=channel")
    plotted = WebDriverWait(browser, 10).until(lambda b: b.execute_script(
        "var c = window.Chart && Chart.getChart('chart-channels');"
        "return c ? [c.data.labels, c.data.datasets[0].data] : null"))
    expected = api.get(f"/api/reports/channels?{NOVEMBER}&by=channel").json["rows"]
    assert plotted == [[NAMES[row["key"]] for row in expected], [row["leads"] for row in expected]]
    table = [[cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")][:3]
             for row in browser.find_elements(By.CSS_SELECTOR, "#report-channels tbody tr")]
    assert table == [[NAMES[row["key"]], str(row["leads"]), str(row["converted"])] for row in expected]
    series = api.get(f"/api/reports/timeseries?{NOVEMBER}").json["series"]
    legend = browser.execute_script("return Chart.getChart('chart-timeseries').data.datasets.map(d => d.label)")
    assert legend == [NAMES[channel] for channel in series]
