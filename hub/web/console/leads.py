"""Leads: the list (filters, search, sorting, pages) and the lead card with its actions."""
from __future__ import annotations

from flask import Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import and_, func, select

from hub.mapping import SOURCE_KEYS
from hub.pipeline import manager_actions, score
from hub.reports import export
from hub.reports.leads import header, lead_rows
from hub.rules import stages
from hub.store.models import Lead, Task
from hub.web import current_hub
from hub.web.api import lead_query, render_lead
from hub.web.console import access, leadlist
from hub.web.console.auth import safe_next
from hub.web.console.blueprint import bp
from hub.web.console.views import client_clock, roles

NOTE_LIMIT = 5000
QUEUE_LIMIT = 200


def list_context(args) -> dict:
    """What the list's filter bar offers."""
    config = current_hub().config
    return {"statuses": leadlist.STATUSES, "channels": leadlist.CHANNELS, "team": config["team"],
            "source_keys": SOURCE_KEYS, "sorts": list(leadlist.SORTS), "args": args,
            "unassigned": leadlist.UNASSIGNED, "now": current_hub().now(),
            "stage_names": stages.all_stage_names(config), "classes": leadlist.CLASSES,
            "scoring": bool(config["scoring"])}


@bp.get("/leads")
def leads():
    hub, args = current_hub(), request.args.to_dict()
    only = None if access.sees_all(g.member) else g.member["id"]
    with hub.db.read() as session:
        page = leadlist.fetch(session, args, hub.config, only_assignee=only)
    return render_template("console/leads.html", page=page, **list_context(args))


@bp.get("/leads.<fmt>")
def leads_download(fmt: str):
    """The list as filtered on the page, every page of it, as CSV or XLSX."""
    if fmt not in export.FORMATS:
        abort(404)
    hub, args = current_hub(), request.args.to_dict()
    args.pop("cursor", None)
    only = None if access.sees_all(g.member) else g.member["id"]
    statement, _column = leadlist.query(args, hub.config, hub.db.engine.dialect.name, only_assignee=only)
    scored = bool(hub.config["scoring"])
    return download(fmt, "leads", header(scored), lead_rows(hub.db, statement, hub.config["timezone"], scored))


def download(fmt: str, name: str, header, rows) -> Response:
    content_type, stream = export.FORMATS[fmt]
    day = current_hub().now().date().isoformat()
    return Response(stream(header, rows), content_type=content_type, headers={
        "Content-Disposition": f'attachment; filename="{name}-{day}.{fmt}"'})


@bp.get("/unassigned")
@roles(*access.ACTS_ON_ALL)
def unassigned():
    """Open leads nobody owns, oldest first, each with a button per available manager."""
    hub = current_hub()
    open_statuses = ("new", "in_progress")
    head_task = and_(Task.lead_id == Lead.id, Task.kind == "assign", Task.status == "open")
    waiting = (select(Lead, Task).outerjoin(Task, head_task)
               .where(Lead.assignee_id.is_(None), Lead.status.in_(open_statuses)).order_by(Lead.id).limit(QUEUE_LIMIT))
    loads = select(Lead.assignee_id, func.count()).where(Lead.status.in_(open_statuses)).group_by(Lead.assignee_id)
    with hub.db.read() as session:
        rows = list(session.execute(waiting))
        load = dict(session.execute(loads).all())
    managers = [dict(m, load=load.get(m["id"], 0)) for m in hub.config["team"]
                if m["role"] == "manager" and not m["away"]]
    return render_template("console/unassigned.html", rows=rows, managers=managers, now=hub.now())


@bp.get("/leads/<int:number>")
def lead(number: int):
    hub = current_hub()
    with hub.db.read() as session:
        row = session.scalar(lead_query().where(Lead.id == number))
        access.require(row is not None and access.may_see(g.member, row))
        card = render_lead(row)
        acts = access.may_act(g.member, row)
        moves = stage_moves(hub.config, row)
    return render_template("console/lead.html", lead=card, acts=acts, clock=client_clock(hub, card["phone"]),
                           statuses=leadlist.STATUSES, team=hub.config["team"], call_kinds=("call", "callback"),
                           moves=moves)


def stage_moves(config, row: Lead) -> dict | None:
    """What the card offers: the lead's pipeline's stages, the next one, the named outcomes."""
    pipeline = stages.pipeline_for(config, row)
    if pipeline is None:
        return None
    return {"pipeline": pipeline, "stages": stages.stage_names(config, pipeline),
            "next": stages.next_stage(config, pipeline, row.stage), "outcomes": stages.outcomes_at(config, row),
            "labels": stages.outcome_labels_at(config, row)}


def acted(number: int, action) -> object:
    """Run ``action(session, lead)`` on a lead the member may act on, then back to its card."""
    hub = current_hub()
    with hub.db.write() as session:
        row = session.get(Lead, number)
        access.require(row is not None and access.may_act(g.member, row))
        action(session, row)
    hub.kicker.kick("sync")
    flash(_("Saved."))
    return redirect(safe_next(request.form.get("next"), url_for("console.lead", number=number)))


@bp.post("/leads/<int:number>/status")
def change_status(number: int):
    status = request.form.get("status")
    access.require(status in leadlist.STATUSES)
    return acted(number, lambda session, row: manager_actions.update_lead(
        session, current_hub(), row, status, None, actor=g.member["id"]))


@bp.post("/leads/<int:number>/assignee")
def reassign(number: int):
    assignee = request.form.get("assignee")
    access.require(access.may_reassign(g.member) and assignee in {m["id"] for m in current_hub().config["team"]})
    return acted(number, lambda session, row: manager_actions.update_lead(
        session, current_hub(), row, None, assignee, actor=g.member["id"]))


@bp.post("/leads/<int:number>/note")
def add_note(number: int):
    text = request.form.get("text", "").strip()[:NOTE_LIMIT]
    access.require(bool(text))
    return acted(number, lambda session, row: manager_actions.add_note(
        session, current_hub(), row, text, actor=g.member["id"]))


@bp.post("/leads/<int:number>/stage")
def move_stage(number: int):
    """A stage (a name or ``next``) or a named outcome, as ``PATCH /api/leads/<number>`` takes them."""
    stage, outcome = request.form.get("stage") or None, request.form.get("outcome") or None
    if bool(stage) == bool(outcome):
        abort(400)

    def move(session, row):
        try:
            manager_actions.move_lead(session, current_hub(), row, stage, outcome, actor=g.member["id"])
        except stages.StageError:
            abort(400)
    return acted(number, move)
@bp.post("/leads/<int:number>/score")
def change_score(number: int):
    """A head or director moves the class up or down by one, or back to the scored one."""
    change = request.form.get("change")
    access.require(access.may_override_score(g.member) and change in score.CHANGES)
    hub = current_hub()
    with hub.db.write() as session:
        row = session.get(Lead, number)
        access.require(row is not None)
        try:
            score.override(session, hub, row, change, g.member["id"])
        except score.OverrideRefused:
            flash(_("The class cannot change that way."))
            return redirect(url_for("console.lead", number=number))
    hub.kicker.kick("sync")
    flash(_("Saved."))
    return redirect(url_for("console.lead", number=number))
