"""My tasks: a team member's open tasks by due time, and closing one with its outcome."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from hub.pipeline import manager_actions
from hub.store.models import Lead, Task
from hub.web import current_hub
from hub.web.console import access
from hub.web.console.auth import safe_next
from hub.web.console.blueprint import bp
from hub.web.console.views import client_clock

CALL_KINDS = ("call", "callback")
OUTCOMES = {"reached": "reached", "no_answer": manager_actions.NO_ANSWER, "wrong_number": "wrong number"}


@bp.get("/tasks")
def my_tasks():
    hub = current_hub()
    query = (select(Task, Lead).join(Lead, Lead.id == Task.lead_id)
             .where(Task.assignee_id == g.member["id"], Task.status == "open")
             .order_by(Task.due_at.is_(None), Task.due_at, Task.id))
    with hub.db.read() as session:
        rows = [(task, lead, client_clock(hub, lead.phone)) for task, lead in session.execute(query)]
    return render_template("console/tasks.html", rows=rows, now=hub.now(), call_kinds=CALL_KINDS)


def chosen_outcome(task: Task) -> str | None:
    """The outcome the form names; a call task needs one, other tasks are simply done."""
    if task.kind not in CALL_KINDS:
        return None
    choice = request.form.get("outcome", "")
    if choice == "other":
        text = request.form.get("other", "").strip()
        return text[:500] or abort(400, _("Describe the outcome."))
    return OUTCOMES.get(choice) or abort(400, _("Choose the outcome of the call."))


@bp.post("/tasks/<int:task_id>/close")
def close_task(task_id: int):
    hub = current_hub()
    with hub.db.write() as session:
        task = session.get(Task, task_id)
        access.require(task is not None)
        access.require(access.may_close(g.member, task, session.get(Lead, task.lead_id)))
        manager_actions.close_task(session, hub, task, chosen_outcome(task), actor=g.member["id"])
    hub.kicker.kick("outbox")
    flash(_("Task closed."))
    return redirect(safe_next(request.form.get("next"), url_for("console.my_tasks")))
