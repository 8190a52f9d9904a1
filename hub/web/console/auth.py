"""Signing in and out, invitations, the session, and the language."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from hub.rules import people
from hub.store import ratelimit
from hub.web import current_hub
from hub.web.console import accounts
from hub.web.console.blueprint import bp, csrf

PUBLIC = {"console.sign_in", "console.invitation", "console.language", "console.static"}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOCALES = ("ru", "en")
PER_ACCOUNT, PER_ADDRESS = 5, 20  # sign-in attempts a minute


@bp.before_request
def authenticate():
    if request.method not in SAFE_METHODS:
        csrf.protect()
    g.member = signed_in_member()
    if g.member is None and request.endpoint not in PUBLIC:
        return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
    return None


def signed_in_member() -> dict | None:
    member_id = session.get("member")
    if not member_id:
        return None
    member = people.member(current_hub().config, member_id)
    if member is None or session.get("key") != accounts.current_key(current_hub(), member_id):
        session.clear()  # removed from the team, or the password changed since
        return None
    return member


def pick_locale() -> str:
    chosen = session.get("locale")
    return chosen if chosen in LOCALES else current_hub().config["locale"]


def safe_next(target: str | None, default: str | None = None) -> str:
    """Only a page of the console: never an open redirect."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return default or url_for("console.home")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    if request.method == "GET":
        return render_template("console/sign_in.html", next=request.args.get("next", ""))
    login, password = request.form.get("login", ""), request.form.get("password", "")
    if not within_limits(login):
        return render_template("console/sign_in.html", next=request.form.get("next", ""), login=login,
                               error=_("Too many attempts. Wait a minute and try again.")), 429
    member = accounts.member_by_login(current_hub().config, login)
    key = accounts.verify(current_hub(), member["id"] if member else None, password)
    if key is None:
        return render_template("console/sign_in.html", next=request.form.get("next", ""), login=login,
                               error=_("Wrong login or password.")), 401
    start_session(member["id"], key)
    return redirect(safe_next(request.form.get("next")))


def within_limits(login: str) -> bool:
    hub = current_hub()
    by_account, _wait = ratelimit.allow(hub, login.strip().lower(), "console-sign-in", PER_ACCOUNT)
    by_address, _wait = ratelimit.allow(hub, request.remote_addr or "-", "console-sign-in-address", PER_ADDRESS)
    return by_account and by_address


def start_session(member_id: str, key: str) -> None:
    locale = session.get("locale")
    session.clear()  # a fresh session: nothing from before signing in carries over
    session.permanent = True
    session.update(member=member_id, key=key)
    if locale:
        session["locale"] = locale


@bp.post("/sign-out")
def sign_out():
    session.clear()
    return redirect(url_for("console.sign_in"))


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def invitation(token: str):
    member_id = accounts.invited_member(current_hub(), token)
    if member_id is None:
        abort(404)
    if request.method == "GET":
        return render_template("console/invitation.html", member=people.member(current_hub().config, member_id))
    password = request.form.get("password", "")
    if password != request.form.get("confirm", ""):
        return invitation_error(member_id, _("The two passwords differ."))
    try:
        accounts.set_password(current_hub(), member_id, password)
    except accounts.PasswordTooShort:
        return invitation_error(member_id, _("A password has at least %(n)d characters.", n=accounts.MIN_PASSWORD))
    start_session(member_id, accounts.current_key(current_hub(), member_id))
    flash(_("Your password is set."))
    return redirect(url_for("console.home"))


def invitation_error(member_id: str, message: str):
    member = people.member(current_hub().config, member_id)
    return render_template("console/invitation.html", member=member, error=message), 422


@bp.post("/language")
def language():
    if request.form.get("locale") in LOCALES:
        session["locale"] = request.form["locale"]
    return redirect(safe_next(request.form.get("next")))
