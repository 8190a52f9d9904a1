"""Who may see and change what: a manager their own leads and tasks; heads and directors
everything; admins see leads but act only on the inbox, dead letters and sources."""
from __future__ import annotations

from flask import abort

from hub.store.models import Lead, Task

SEES_ALL = ("head", "director", "admin")
ACTS_ON_ALL = ("head", "director")


def sees_all(member: dict) -> bool:
    return member["role"] in SEES_ALL


def may_see(member: dict, lead: Lead) -> bool:
    return sees_all(member) or lead.assignee_id == member["id"]


def may_act(member: dict, lead: Lead) -> bool:
    return member["role"] in ACTS_ON_ALL or (member["role"] == "manager" and lead.assignee_id == member["id"])


def may_reassign(member: dict) -> bool:
    return member["role"] in ACTS_ON_ALL


def may_override_score(member: dict) -> bool:
    """Heads and directors raise or lower a lead's class."""
    return member["role"] in ACTS_ON_ALL


def may_close(member: dict, task: Task, lead: Lead) -> bool:
    return task.assignee_id == member["id"] or may_act(member, lead)


def require(allowed: bool) -> None:
    """Not found rather than forbidden: a manager does not learn which lead numbers exist."""
    if not allowed:
        abort(404)
