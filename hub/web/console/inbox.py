"""For admins: the inbox of raw events (filter, view the request masked, replay, triage
ignored mail) and the dead letters (notifications and CRM deliveries that gave up)."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import or_, select

from hub.delivery import replay
from hub.store.journal import find_event
from hub.store.models import Notification, RawEvent, SyncDelivery
from hub.web import current_hub
from hub.web.console import access, rawview
from hub.web.console.blueprint import bp
from hub.web.console.views import roles

EVENT_STATUSES = ("pending", "processed", "ignored", "failed", "dead")
PAGE = 50
DEAD_SHOWN = 200


def event_query(args):
    query = select(RawEvent).order_by(RawEvent.id.desc())
    if args.get("kind"):
        query = query.where(or_(RawEvent.kind == args["kind"], RawEvent.channel == args["kind"]))
    for name in ("provider", "endpoint"):
        if args.get(name):
            query = query.where(getattr(RawEvent, name) == args[name])
    if args.get("status") in EVENT_STATUSES:
        query = query.where(RawEvent.status == args["status"])
    if args.get("cursor", "").isdigit():
        query = query.where(RawEvent.id < int(args["cursor"]))
    return query


@bp.get("/inbox")
@roles("admin")
def inbox():
    args = request.args.to_dict()
    with current_hub().db.read() as session:
        rows = list(session.scalars(event_query(args).limit(PAGE + 1)))
    next_cursor = str(rows[PAGE - 1].id) if len(rows) > PAGE else None
    return render_template("console/inbox.html", events=rows[:PAGE], args=args, next_cursor=next_cursor,
                           statuses=EVENT_STATUSES)


def stored_event(session, event_id: str) -> RawEvent:
    raw = find_event(current_hub().db, session, event_id)
    access.require(raw is not None)
    return raw


@bp.get("/events/<event_id>")
@roles("admin")
def event(event_id: str):
    with current_hub().db.read() as session:
        raw = stored_event(session, event_id)
        return render_template("console/event.html", event=raw, raw=rawview.view(raw))


@bp.post("/events/<event_id>/replay")
@roles("admin")
def replay_event(event_id: str):
    try:
        outcomes = replay.replay_events(current_hub(), event_id=event_id)
    except LookupError:
        access.require(False)
    flash(_("Replayed: %(outcome)s", outcome="; ".join(outcomes)))
    return redirect(url_for("console.event", event_id=event_id))


@bp.post("/events/<event_id>/triage")
@roles("admin")
def triage(event_id: str):
    verdict = request.form.get("verdict")
    access.require(verdict in ("lead", "spam"))
    try:
        outcomes = replay.triage(current_hub(), event_id, verdict, g.member["id"])
    except LookupError:
        access.require(False)
    flash(_("Made a lead: %(outcome)s", outcome=outcomes[0]) if verdict == "lead" else _("Marked as spam."))
    return redirect(url_for("console.event", event_id=event_id))


@bp.get("/dead")
@roles("admin")
def dead_letters():
    with current_hub().db.read() as session:
        notifications = list(session.scalars(select(Notification).where(
            Notification.status.in_(("dead", "unknown"))).order_by(Notification.id.desc()).limit(DEAD_SHOWN)))
        syncs = list(session.scalars(select(SyncDelivery).where(SyncDelivery.status == "dead")
                                     .order_by(SyncDelivery.id.desc()).limit(DEAD_SHOWN)))
    return render_template("console/dead_letters.html", notifications=notifications, syncs=syncs,
                           channels=sorted({n.channel for n in notifications}),
                           targets=sorted({s.target for s in syncs}))


@bp.post("/dead/notifications")
@roles("admin")
def replay_dead_notifications():
    """One (``id``) or all of one channel (``channel``) back in the outbox."""
    ids = [int(request.form["id"])] if request.form.get("id", "").isdigit() else None
    channel = request.form.get("channel") or None
    access.require(ids is not None or channel is not None)
    count = replay.replay_notifications(current_hub(), ids=ids, channel=channel)
    flash(_("%(n)d back in the outbox.", n=count))
    return redirect(url_for("console.dead_letters"))


@bp.post("/dead/syncs")
@roles("admin")
def replay_dead_syncs():
    """One (``id``) or all of one CRM target (``target``) queued again."""
    ids = [int(request.form["id"])] if request.form.get("id", "").isdigit() else None
    target = request.form.get("target") or None
    access.require(ids is not None or target is not None)
    count = replay.replay_syncs(current_hub(), ids=ids, target=target)
    flash(_("%(n)d queued again.", n=count))
    return redirect(url_for("console.dead_letters"))
