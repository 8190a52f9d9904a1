"""What every console page shares: who may see it, its security headers, error pages and the
template filters."""
from __future__ import annotations

import functools

from flask import Flask, abort, g, redirect, render_template, url_for
from flask_babel import format_datetime, format_decimal, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from hub.durations import format_duration
from hub.rules.quiet_hours import client_zone, release_time
from hub.web.console.blueprint import bp

# No inline script or style anywhere: the one script and the one stylesheet are files.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
# (endpoint, title, roles that see it, endpoints that belong to it)
NAV = (
    ("console.my_tasks", _l("My tasks"), ("manager", "head", "director"), ()),
    ("console.leads", _l("Leads"), ("manager", "head", "director", "admin"), ("console.lead",)),
    ("console.unassigned", _l("Unassigned"), ("head", "director"), ()),
    ("console.reports", _l("Reports"), ("head", "director", "admin"), ()),
    ("console.inbox", _l("Inbox"), ("admin",), ("console.event",)),
    ("console.dead_letters", _l("Dead letters"), ("admin",), ()),
    ("console.sources", _l("Sources"), ("admin",), ()),
    ("console.config", _l("Config"), ("admin",), ()),
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


def roles(*allowed: str):
    """Only team members with one of these roles may open the page."""
    def wrap(view):
        @functools.wraps(view)
        def checked(*args, **kwargs):
            if g.member["role"] not in allowed:
                abort(403)
            return view(*args, **kwargs)
        return checked
    return wrap


@bp.get("/")
def home():
    if g.member["role"] == "admin":
        return redirect(url_for("console.inbox"))
    return redirect(url_for("console.my_tasks"))


@bp.after_request
def security_headers(response):
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.errorhandler(CSRFError)
def csrf_refused(error: CSRFError):
    message = _("The form has expired or did not come from this console. Reload the page and try again.")
    return render_template("console/error.html", status=400, message=message), 400


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    messages = {403: _("You have no access to this page."), 404: _("Not found.")}
    message = messages.get(error.code, error.description)
    return render_template("console/error.html", status=error.code, message=message), error.code


def nav(member: dict, endpoint: str | None) -> list[dict]:
    return [{"endpoint": name, "title": title, "current": endpoint == name or endpoint in also}
            for name, title, allowed, also in NAV if member["role"] in allowed]


def client_clock(hub, phone: str | None) -> dict:
    """The client's time zone and local time, and whether it is quiet hours there now."""
    zone = client_zone(phone, hub.config["timezone"])
    now, window = hub.now(), hub.config["sms"]["quiet_hours"]
    quiet = bool(window) and release_time(now, zone, window) != now
    return {"zone": zone.key, "time": now.astimezone(zone).strftime("%H:%M"), "quiet": quiet, "window": window}


def amount(value) -> str:
    """A lead's value, grouped in the page's language (150 000 / 150,000)."""
    return "—" if value is None else format_decimal(value, format="#,##0")


def moment(value, pattern: str = "dd.MM.yyyy HH:mm") -> str:
    """A UTC datetime (or ISO text) in the team's time zone."""
    if not value:
        return "—"
    if isinstance(value, str):
        from datetime import datetime

        value = datetime.fromisoformat(value)
    return format_datetime(value, pattern)


def web_link(url) -> str | None:
    """A provider's link (a call recording) only when it is http(s): never ``javascript:``."""
    return url if isinstance(url, str) and url.lower().startswith(("https://", "http://")) else None


def init_app(app: Flask) -> None:
    from hub.web.console import access, labels

    app.jinja_env.filters.update(moment=moment, web_link=web_link, duration=format_duration, amount=amount)
    app.jinja_env.globals.update(get_locale=get_locale, nav=nav, label=labels.label, task_title=labels.task_title,
                                 dimension_label=labels.dimension_label,
                                 may_reassign=access.may_reassign, may_act=access.may_act,
                                 may_override_score=access.may_override_score)

