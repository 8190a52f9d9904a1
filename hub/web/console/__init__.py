"""The operator console under ``/console``: server-rendered pages for the team. Managers work
their tasks and leads, heads and directors see and reassign everything, admins watch the
inbox, dead letters and sources. Every state change goes through ``hub.pipeline.manager_actions``
or ``hub.delivery.replay``, the same functions the API and the CLI call."""
from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask, redirect, request, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_babel import Babel

from hub.web.console import auth, inbox, leads, reports, sources, tasks, views  # noqa: F401 (their routes join bp)
from hub.web.console.blueprint import bp, csrf

HERE = Path(__file__).resolve().parent
SESSION_LIFETIME = timedelta(hours=12)


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the console is reached over TLS, directly or
    through a trusted proxy that says so (``limits.trusted_proxies``)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)

    def open_session(self, app: Flask, request):
        """None (Flask's read-only null session, never saved) for the intake: providers and
        site forms carry no console session, and its cookie is neither read nor set there."""
        if request.path.startswith("/hooks/"):
            return None
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask):
        """One serializer per key, not a new one for every request (every intake post too)."""
        key = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        cached = getattr(self, "_serializer", None)
        if cached is None or cached[0] != key:
            cached = self._serializer = (key, super().get_signing_serializer(app))
        return cached[1]


def init_app(app: Flask, hub, secret_key: str | None = None) -> None:
    """``secret_key`` signs the session cookie and the CSRF tokens: ``HUB_SECRET_KEY``, or a
    random key that lives as long as the process (``hub run`` / ``hub web`` set one for all
    their workers)."""
    app.secret_key = secret_key or hub.environ.get("HUB_SECRET_KEY") or secrets.token_hex(32)
    app.session_interface = SessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="hub_session", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        WTF_CSRF_CHECK_DEFAULT=False,  # the console checks its own forms; hooks and the API do not use cookies
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as the session
        BABEL_TRANSLATION_DIRECTORIES=str(HERE / "translations"),
        BABEL_DEFAULT_TIMEZONE=hub.config["timezone"])
    csrf.init_app(app)
    Babel(app, locale_selector=auth.pick_locale)
    views.init_app(app)
    app.register_blueprint(bp)
    app.add_url_rule("/", "home", lambda: redirect(url_for("console.home")))
