"""The tracking script (`GET /t.js`) in a real Chromium: a site served on another loopback port
loads it, keeps the visitor's first and last touch across pages and visits, and its forms post
them to the hub. The script's clock is the page's ``data-now``, set by the test."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from html import escape

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from hub.store.models import Lead

LANDED = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
PHONE = "+79161234567"
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script src="{hub}/t.js" data-now="{now}" {attributes}></script></head>
<body><a id="next" href="/second">More</a>
<form method="post" action="{hub}/hooks/forms/landing">
<input name="name" value="Ivan"><input name="phone" value="{phone}"><button type="submit">Send</button>
</form></body></html>"""


class Site:
    """A visitor's view of a site: its pages at ``at``, each loading the hub's script."""

    def __init__(self, hub_base: str):
        self.hub_base, self.at, self.attributes = hub_base, LANDED, ""
        self.server = make_server("127.0.0.1", 0, self.page, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"

    @Request.application
    def page(self, request):
        html = PAGE.format(hub=self.hub_base, now=int(self.at.timestamp() * 1000), attributes=self.attributes,
                           phone=escape(PHONE))
        return Response(html, content_type="text/html; charset=utf-8")


@pytest.fixture
def config_document(config_document):
    config_document["forms"]["landing"]["cors_origins"] = ["*"]
    return config_document


@pytest.fixture
def site(live):
    served = Site(live)
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    thread.join()


def submit(browser, run_jobs, hub) -> Lead:
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 10, ignored_exceptions=(WebDriverException,)).until(
        lambda b: "accepted" in b.find_element(By.TAG_NAME, "body").text
    )
    run_jobs()
    with hub.db.read() as session:
        return session.scalar(select(Lead).where(Lead.phone == PHONE))


def land_and_read_on(browser, site):
    site.at = LANDED
    browser.get(f"{site.base}/promo?utm_source=yandex&utm_term=crm")
    browser.find_element(By.ID, "next").click()
    WebDriverWait(browser, 10).until(lambda b: b.current_url.endswith("/second"))


def test_the_landing_touch_survives_a_move_to_another_page(browser, site, run_jobs, hub):
    land_and_read_on(browser, site)
    requested = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert requested and all(url.startswith((site.base, site.hub_base)) for url in requested)  # no third party
    lead = submit(browser, run_jobs, hub)
    assert (lead.source["utm_source"], lead.source["utm_term"]) == ("yandex", "crm")
    assert lead.source["landing_page"] == f"{site.base}/promo?utm_source=yandex&utm_term=crm"
    assert lead.last_source["utm_source"] == "yandex"


def test_a_return_a_week_later_is_the_last_touch_and_the_first_stays(browser, site, run_jobs, hub):
    land_and_read_on(browser, site)
    site.at = LANDED + timedelta(days=7)
    browser.get(f"{site.base}/?utm_source=google")
    lead = submit(browser, run_jobs, hub)
    assert (lead.source["utm_source"], lead.source["utm_term"]) == ("yandex", "crm")
    assert lead.last_source["utm_source"] == "google" and lead.last_source["utm_term"] is None

    site.at = LANDED + timedelta(days=14)  # typed in: no tags, no referrer
    browser.get(f"{site.base}/second")
    lead = submit(browser, run_jobs, hub)
    assert lead.source["utm_source"] == "yandex"
    assert lead.last_source["utm_source"] is None and lead.last_source["referrer"] is None
    assert lead.last_source["landing_page"] == f"{site.base}/second"


def test_touches_older_than_the_kept_days_are_forgotten(browser, site, run_jobs, hub):
    site.attributes = 'data-days="30"'
    land_and_read_on(browser, site)
    site.at = LANDED + timedelta(days=31)
    browser.get(f"{site.base}/?utm_source=google")
    lead = submit(browser, run_jobs, hub)
    assert lead.source["utm_source"] == "google" == lead.last_source["utm_source"]


def test_with_consent_pending_nothing_is_kept_until_started(browser, site):
    site.attributes = 'data-consent="wait"'
    browser.get(f"{site.base}/promo?utm_source=yandex")
    stored = "return localStorage.getItem('leadhub_touches')"
    assert browser.execute_script(stored) is None
    assert not browser.find_elements(By.CSS_SELECTOR, "input[name=utm_source]")
    browser.execute_script("window.leadHubTracking.start()")
    assert '"utm_source":"yandex"' in browser.execute_script(stored)
    assert browser.find_element(By.CSS_SELECTOR, "input[name=utm_source]").get_attribute("value") == "yandex"


def test_intake_reads_the_last_touch_fields_and_keeps_the_first(client, run_jobs, hub):
    """What the script sends, posted without a browser; a form without it keeps one touch."""
    first = {"utm_source": "yandex", "landing_page": "https://site.example/promo?utm_term=crm"}
    last = {"last_utm_source": "", "last_referrer": "", "last_landing_page": "https://site.example/price"}
    assert client.post("/hooks/forms/landing", data={"phone": PHONE, **first, **last}).status_code == 202
    assert client.post("/hooks/forms/landing", data={"phone": "+79161112233", "utm_source": "vk"}).status_code == 202
    run_jobs()
    with hub.db.read() as session:
        tracked, plain = session.scalars(select(Lead).order_by(Lead.id)).all()
    assert (tracked.source["utm_source"], tracked.source["utm_term"]) == ("yandex", "crm")
    assert tracked.last_source["utm_source"] is None  # the latest visit was direct
    assert tracked.last_source["landing_page"] == "https://site.example/price"
    assert plain.source["utm_source"] == plain.last_source["utm_source"] == "vk"
