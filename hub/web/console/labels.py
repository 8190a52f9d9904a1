"""Words stored in English in the database (statuses, channels, roles, task kinds, actions)
as the console shows them, in the page's language."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

LABELS = {
    # lead statuses
    "new": _l("new"), "in_progress": _l("in progress"), "converted": _l("converted"),
    "junk": _l("junk"), "archived": _l("archived"),
    # channels
    "form": _l("form"), "mail": _l("mail"), "call": _l("call"), "sms": _l("SMS"), "email": _l("e-mail"),
    # source kinds
    "mailbox": _l("mailbox"), "telephony": _l("telephony"), "number": _l("number"),
    # roles
    "manager": _l("manager"), "head": _l("head"), "director": _l("director"), "admin": _l("admin"),
    # task kinds
    "callback": _l("call back"), "escalation": _l("escalation"), "assign": _l("assign"),
    # notification, delivery and event states
    "pending": _l("pending"), "sending": _l("sending"), "sent": _l("sent"), "delivered": _l("delivered"),
    "failed": _l("failed"), "dead": _l("dead"), "unknown": _l("unknown"), "syncing": _l("syncing"),
    "synced": _l("synced"), "processed": _l("processed"), "ignored": _l("ignored"),
    "open": _l("open"), "done": _l("done"), "expired": _l("expired"), "cancelled": _l("cancelled"),
    # history
    "created": _l("created"), "assigned": _l("assigned"), "reassigned": _l("reassigned"),
    "reminded": _l("reminded"), "escalated": _l("escalated"), "status_changed": _l("status changed"),
    "stage_entered": _l("entered a stage"), "stage_left": _l("left a stage"),
    "task_done": _l("task done"), "note": _l("note"), "handled": _l("handled"),
    "callback_ladder_started": _l("callback ladder started"),
    "callback_ladder_stopped": _l("callback ladder stopped"), "escalation_skipped": _l("escalation skipped"),
    "assign_requested": _l("waiting for assignment"), "score_override": _l("class changed"),
    # call directions
    "inbound": _l("inbound"), "outbound": _l("outbound"), "answered": _l("answered"), "missed": _l("missed"),
}


def label(value) -> str:
    return str(LABELS.get(value, value if value is not None else "—"))


DIMENSIONS = {"channel": _l("channel"), "utm_source": _l("UTM source"), "utm_medium": _l("UTM medium"),
              "utm_campaign": _l("UTM campaign"), "utm_term": _l("UTM term (keyword)"),
              "utm_content": _l("UTM content"), "form": _l("form"), "mailbox": _l("mailbox"),
              "called_number": _l("called number"), "click_id": _l("click id (gclid, yclid)"),
              "class": _l("score class")}


CLICK_ID = {"yes": _l("with a click id"), "no": _l("without a click id")}


def value_label(key: str, value) -> str:
    """A report's value of the dimension ``key`` as the page shows it: channels and statuses in
    the page's language, whether the lead came with a click id in words, the rest as stored."""
    if key == "click_id" and value in CLICK_ID:
        return str(CLICK_ID[value])
    if key in ("channel", "status") or value is None:
        return label(value)
    return str(value)


def dimension_label(key: str) -> str:
    """A report dimension (a lead field) as the reports page names it."""
    return str(DIMENSIONS.get(key, key))


TASK_TITLES = {"call": _l("Call the client"), "callback": _l("Call the client back"),
               "assign": _l("Assign a responsible manager")}


def task_title(kind: str, title: str) -> str:
    """Tasks the hub makes are titled in English when stored; these kinds in the page's language."""
    return str(TASK_TITLES[kind]) if kind in TASK_TITLES else title
