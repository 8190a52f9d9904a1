"""Bitrix24 CRM target (``crm: [{target: bitrix24, webhook_url_env: ...}]``) through an incoming
webhook (Bitrix24 REST API); field names come from ``mappings/crm/bitrix24.yaml``.

* create: ``crm.lead.add``, marked ``ORIGINATOR_ID`` "lead-hub" + ``ORIGIN_ID`` "<number>". A retry
  (attempt > 1) first asks ``crm.lead.list`` for that pair: the try that timed out may have
  created the lead, and then its id is returned instead of adding a duplicate.
* update: ``crm.lead.update`` with the mapped ``STATUS_ID`` / ``ASSIGNED_BY_ID`` (and the score's
  ``score_fields``), then one
  ``crm.timeline.comment.add`` per later touch (every touch after the first). Each comment ends
  with ``[lead-hub touch <event id>]``; the lead's newest 50 comments are listed first and
  touches already commented are skipped, so updates can be repeated safely.

The webhook URL is the credential: its code is masked in every error message, and network
errors are raised without their cause (whose text holds the URL).

Events back (the REST docs' "events" pages): an outgoing webhook (or ``event.bind`` handler)
posts ``ONCRMLEADUPDATE`` / ``ONCRMLEADDELETE`` form-encoded, with only the lead's id. It is
checked against the ``application_token`` the portal showed (and ``member_id`` when
configured); the lead is read back with ``crm.lead.get`` and polled with ``crm.lead.list``
(``>DATE_MODIFY``). A stage's ``STATUS_SEMANTIC_ID`` decides success (``converted``) and
failure (``junk``); other stages go through the reverse of ``status_ids``.
"""
from __future__ import annotations

import hmac
import html
from collections.abc import Callable, Iterator
from datetime import datetime
from urllib.parse import urlsplit

import requests

from connectors import crm
from connectors.base import (
    BadRequest,
    CrmEvent,
    CrmLead,
    Forbidden,
    Inbound,
    Parsed,
    PermanentFailure,
    TemporaryFailure,
)

NAME = "bitrix24"
SECRETS = ("webhook_url_env", "application_token_env")
OPTIONAL_SECRETS = ("application_token_env",)  # only to receive events
INBOUND = ("application_token_env",)
SETTINGS = SECRETS + ("base_url", "team", "source_ids", "source_fields", "originator_id",
                      "status_ids", "stage_ids", "member_id", "score_fields")  # its own keys in crm:
RATE = (2.0, 50)  # requests a second, burst: the documented leaky bucket
TEMPORARY_CODES = {"QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT", "INTERNAL_SERVER_ERROR"}
EVENTS = {"ONCRMLEADUPDATE": "update", "ONCRMLEADDELETE": "delete"}
BOUND_EVENTS = tuple(EVENTS)
IGNORED_EVENTS = {"ONCRMLEADADD": "a lead added in the CRM: the hub follows only the leads it "
                                  "pushed, whose ids it learns from its own pushes"}
SEMANTICS = {"P": "process", "S": "success", "F": "failure"}
SELECT = ["ID", "STATUS_ID", "STATUS_SEMANTIC_ID", "ASSIGNED_BY_ID", "MODIFY_BY_ID", "DATE_MODIFY"]
TOKEN_FIELD = "auth[application_token]"


def load_mapping() -> dict:
    return crm.load_mapping(NAME)


def push(lead: dict, settings: dict, external_id: str | None, attempt: int,
         throttle: Callable[[], None]) -> str:
    portal = Portal(settings, throttle)
    if external_id:
        update(portal, lead, settings, external_id)
        return external_id
    if attempt > 1:
        found = find_existing(portal, lead, settings)
        if found:
            return found
    payload = {"fields": lead_fields(lead, settings), "params": {"REGISTER_SONET_EVENT": "Y"}}
    return str(portal.call("crm.lead.add", payload))


def lead_fields(lead: dict, settings: dict) -> dict:
    mapping = load_mapping()
    source = lead.get("source") or {}
    fields = {
        "TITLE": mapping["title"].format(number=lead["number"], who=_who(lead)),
        "NAME": lead.get("name"),
        "PHONE": _multifield(lead.get("phone"), mapping["phone_type"]),
        "EMAIL": _multifield(lead.get("email"), mapping["email_type"]),
        "SOURCE_ID": source_id(lead.get("channel"), settings),
        "SOURCE_DESCRIPTION": "\n".join(f"{key}: {source[key]}"
                                        for key in mapping["source_description"] if source.get(key)),
        "COMMENTS": html.escape(lead.get("message") or ""),
        "ASSIGNED_BY_ID": assignee_id(lead, settings),
        "ORIGINATOR_ID": originator_id(settings),
        "ORIGIN_ID": str(lead["number"]),
    }
    for key, field in {**mapping["source_fields"], **settings.get("source_fields", {})}.items():
        fields[field] = source.get(key)  # a field mapped to null in the config is dropped below
    fields.update(crm.score_values(lead, settings))  # e.g. UF_CRM_LEAD_CLASS, OPPORTUNITY
    return {name: value for name, value in fields.items() if name and value}


def source_id(channel: str | None, settings: dict) -> str:
    mapping = load_mapping()
    source_ids = {**mapping["source_ids"], **settings.get("source_ids", {})}
    return source_ids.get(channel) or mapping["default_source_id"]


def originator_id(settings: dict) -> str:
    """Overridable so that two hubs (staging, production) sharing a portal never match."""
    return settings.get("originator_id") or load_mapping()["originator_id"]


def assignee_id(lead: dict, settings: dict) -> int | None:
    team_id = (lead.get("assignee") or {}).get("id")
    return (settings.get("team") or {}).get(team_id)


def find_existing(portal: Portal, lead: dict, settings: dict) -> str | None:
    marker = {"ORIGINATOR_ID": originator_id(settings), "ORIGIN_ID": str(lead["number"])}
    found = portal.call("crm.lead.list", {"filter": marker, "select": ["ID"], "order": {"ID": "ASC"}})
    return str(found[0]["ID"]) if found else None


def status_ids(settings: dict) -> dict:
    """Our status -> STATUS_ID (or a list: the first is pushed, all of them read back)."""
    return {**load_mapping()["status_ids"], **(settings.get("status_ids") or {})}


def update(portal: Portal, lead: dict, settings: dict, lead_id: str) -> None:
    sent = crm.moved(lead, settings, status_ids(settings), assignee_id(lead, settings))
    fields = {name: value for name, value in (("STATUS_ID", sent["status"]), ("ASSIGNED_BY_ID", sent["user"]))
              if value}
    fields.update(crm.score_values(lead, settings))  # the hub's own: sent on every update
    if fields:
        portal.call("crm.lead.update", {"id": lead_id, "fields": fields,
                                        "params": {"REGISTER_SONET_EVENT": "Y"}})
    comment_touches(portal, lead.get("touches") or [], lead_id)


def comment_touches(portal: Portal, touches: list[dict], lead_id: str) -> None:
    """One timeline comment per touch after the first, skipping those already commented."""
    if len(touches) < 2:
        return
    entity = {"ENTITY_ID": int(lead_id) if lead_id.isdigit() else lead_id, "ENTITY_TYPE": "lead"}
    listed = portal.call("crm.timeline.comment.list",
                         {"filter": entity, "select": ["ID", "COMMENT"], "order": {"ID": "DESC"}})
    seen = "\n".join(str(comment.get("COMMENT") or "") for comment in listed or [])
    for touch in touches[1:]:
        if touch_marker(touch) not in seen:
            portal.call("crm.timeline.comment.add",
                        {"fields": {**entity, "COMMENT": touch_comment(touch)}})


def touch_marker(touch: dict) -> str:
    key = touch.get("event_id") or f"{touch.get('channel')} {touch.get('at')}"
    return f"[lead-hub touch {key}]"


def touch_comment(touch: dict) -> str:
    header = load_mapping()["touch_comment"].format(channel=touch.get("channel"), at=touch.get("at"))
    source = [f"{key}: {value}" for key, value in (touch.get("source") or {}).items() if value]
    return "\n".join([header, *source, touch_marker(touch)])


class Portal:
    """One portal's REST endpoint behind the incoming webhook URL."""

    def __init__(self, settings: dict, throttle: Callable[[], None]):
        self.webhook_url = settings["webhook_url"].rstrip("/")
        self.base_url = settings.get("base_url")
        self.timeout = settings.get("timeout", 10)
        self.throttle = throttle

    def endpoint(self, method: str) -> str:
        if not self.base_url:  # base_url points the same path at a staging or local server
            return f"{self.webhook_url}/{method}"
        return f"{self.base_url.rstrip('/')}{urlsplit(self.webhook_url).path}/{method}"

    def mask(self, text: str) -> str:
        path = urlsplit(self.webhook_url).path.rstrip("/")
        for secret in (path, path.rpartition("/")[2]):
            text = text.replace(secret, "***") if secret else text
        return text

    def call(self, method: str, payload: dict):
        return self.answer(method, payload)["result"]

    def answer(self, method: str, payload: dict) -> dict:
        """The whole JSON answer (``result`` and, for lists, ``next`` and ``total``)."""
        self.throttle()
        response = self.send(method, payload)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400 or not isinstance(body, dict) or "result" not in body:
            raise self.failure(method, response, body if isinstance(body, dict) else {})
        return body

    def send(self, method: str, payload: dict) -> requests.Response:
        error = None
        try:
            return requests.post(self.endpoint(method), json=payload, timeout=self.timeout)
        except requests.RequestException as exc:
            error = self.mask(f"Bitrix24 {method}: {exc}")
        # raised outside the except block: the original exception's text holds the URL, and
        # it must not ride along as __context__ into logged tracebacks
        raise TemporaryFailure(error)

    def failure(self, method: str, response: requests.Response, body: dict) -> Exception:
        code = str(body.get("error") or "")
        description = str(body.get("error_description") or response.reason or "no JSON result")
        status = response.status_code
        message = self.mask(f"Bitrix24 {method}: HTTP {status}{' ' + code if code else ''}: {description}")
        if status == 429 or status >= 500 or code in TEMPORARY_CODES or (status < 400 and not code):
            return TemporaryFailure(message, retry_after=_retry_after(response))
        if description.strip().lower() == "not found":
            return NotFound(message)
        if code == "WRONG_AUTH_TYPE":
            return NeedsApplication(message)
        return PermanentFailure(message)


class NotFound(PermanentFailure):
    """The portal has no such lead (deleted, or never there)."""


class NeedsApplication(PermanentFailure):
    """The method works only in an application's context, not through an incoming webhook."""


def _who(lead: dict) -> str:
    return lead.get("name") or lead.get("phone") or lead.get("email") or "—"


def _multifield(value: str | None, value_type: str) -> list[dict] | None:
    return [{"VALUE": value, "VALUE_TYPE": value_type}] if value else None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


# --- events back from the portal ---------------------------------------------------------


def verify(inbound: Inbound, settings: dict) -> None:
    expected = settings.get("application_token")
    if not expected:
        raise Forbidden("this target receives no events: set its application_token_env",
                        {TOKEN_FIELD: "not configured"})
    fields = crm.form_fields(inbound)
    given = fields.get(TOKEN_FIELD, "")
    if not given or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise Forbidden(f"{TOKEN_FIELD} does not match", {TOKEN_FIELD: "invalid"})
    member = settings.get("member_id")
    if member and fields.get("auth[member_id]") != str(member):
        raise Forbidden("auth[member_id] is not the configured portal", {"auth[member_id]": "invalid"})


def parse(inbound: Inbound, settings: dict) -> list[Parsed]:
    fields = crm.form_fields(inbound)
    event = fields.get("event", "").strip().upper()
    if not event:
        raise BadRequest("missing event", {"event": "required"})
    lead_id = fields.get("data[FIELDS][ID]", "").strip()
    if event not in EVENTS:
        reason = IGNORED_EVENTS.get(event) or f"not a lead change: {event}"
        return [Parsed(event, {"id": lead_id}, ignore=reason)]
    if not lead_id.isdigit():
        raise BadRequest("data[FIELDS][ID] is not a lead id", {"data[FIELDS][ID]": "required"})
    key = ":".join((event, lead_id, fields.get("ts", ""), fields.get("event_handler_id", "")))
    action = EVENTS[event]
    return [Parsed(f"lead.{action}", {"id": lead_id}, delivery_key=key,
                   extra={"crm": CrmEvent(action, lead_id)})]


def reply(parsed: Parsed | None) -> None:
    return None  # any quick 2xx will do: the hub's own JSON answer


def read_back(event: CrmEvent, settings: dict, throttle: Callable[[], None]) -> CrmLead:
    if event.action == "delete":
        return CrmLead(event.external_id, deleted=True)
    try:
        found = Portal(settings, throttle).call("crm.lead.get", {"id": event.external_id})
    except NotFound:
        return CrmLead(event.external_id, deleted=True)
    return lead_state(found)


def changed_since(settings: dict, since: datetime, throttle: Callable[[], None]) -> Iterator[list[CrmLead]]:
    """Pages of 50 leads modified after ``since``, oldest change first."""
    portal, start = Portal(settings, throttle), 0
    query = {"filter": {">DATE_MODIFY": since.isoformat(timespec="seconds")}, "select": SELECT,
             "order": {"DATE_MODIFY": "ASC"}}
    while start is not None:
        body = portal.answer("crm.lead.list", {**query, "start": start})
        yield [lead_state(item) for item in body["result"] or []]
        start = body.get("next")


def lead_state(fields: dict) -> CrmLead:
    return CrmLead(external_id=str(fields["ID"]), status=crm.text(fields.get("STATUS_ID")),
                   semantic=SEMANTICS.get(str(fields.get("STATUS_SEMANTIC_ID") or "")),
                   user=crm.text(fields.get("ASSIGNED_BY_ID")),
                   modified_at=crm.timestamp(fields.get("DATE_MODIFY")),
                   modified_by=crm.text(fields.get("MODIFY_BY_ID")))


def hub_status(lead: CrmLead, settings: dict) -> str | None:
    """The stage's own semantics first (a portal may have several failure stages), then the
    reverse of ``status_ids``; ``None`` for a stage nobody mapped."""
    if lead.semantic == "success":
        return "converted"
    if lead.semantic == "failure":
        return "junk"
    return crm.reverse(status_ids(settings)).get(lead.status or "")


def hub_stage(lead: CrmLead, settings: dict) -> str | None:
    """A pipeline stage of the hub this CRM stage stands for (``stage_ids``); never a closed one."""
    return None if hub_status(lead, settings) in ("converted", "junk") else crm.hub_stage(lead.status, settings)


def sent_state(lead: dict, settings: dict, created: bool) -> dict:
    """What the push sent (``crm.moved``); ``hub`` is the lead as the hub had it."""
    return crm.sent_state(crm.moved(lead, settings, status_ids(settings), assignee_id(lead, settings), created), lead)


def connect(settings: dict, url: str, throttle: Callable[[], None]) -> list[str]:
    portal = Portal(settings, throttle)
    try:
        for event in BOUND_EVENTS:
            portal.call("event.bind", {"event": event, "handler": url})
    except NeedsApplication:
        return outgoing_webhook_steps(url)
    return [f"bound {event} to {url}" for event in BOUND_EVENTS] + [
        "Put the application token its events carry in the variable named by application_token_env."]


def outgoing_webhook_steps(url: str) -> list[str]:
    return [
        "Bitrix24 binds event handlers only for applications, not through an incoming webhook.",
        "In the portal: Applications > Developer resources > Other > Outgoing webhook:",
        f"  handler URL: {url}",
        f"  events: {', '.join(BOUND_EVENTS)} (lead updated, lead deleted)",
        "Save it, then put the application token it shows in the variable named by "
        "application_token_env, and restart the hub.",
    ]
