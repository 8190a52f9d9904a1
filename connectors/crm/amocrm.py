"""amoCRM (Kommo) CRM target (``crm: [{target: amocrm, base_url: ..., token_env: ...}]``), API v4
with a bearer token (amoCRM API v4); field codes come from ``mappings/crm/amocrm.yaml``.

* create: ``POST /api/v4/leads/complex`` with one lead, its contact (PHONE / EMAIL) and the
  channel as a tag; the client's message follows as a common note on the lead.
* look-before-create: amoCRM has no idempotency key on create (``request_id`` is only echoed
  back), so the lead's name ends with the marker ``[lead-hub-<number>]``. A retry (attempt > 1)
  first searches ``GET /api/v4/leads?query=lead-hub-<number>`` (a search over the lead's filled
  fields, the name among them) and takes only a lead whose name ends with that exact marker:
  the search matches substrings, so ``lead-hub-12`` also finds ``lead-hub-123``. A name kept in
  a field is searchable where tags may not be, and one tag per lead would flood the tag list.
* update: ``PATCH /api/v4/leads/<id>`` with the mapped ``status_id`` / ``responsible_user_id``
  (and the score's ``score_fields``: ``price``, or custom fields by id or code).

Events back (amoCRM's "Webhooks" format): account webhooks post ``leads[<action>][n][...]``
form-encoded, unsigned; so the URL carries a secret (``?secret=``, ``hook_secret_env``) and
``account[id]`` must be the configured ``account_id``. The webhook carries the lead's fields,
so only a delete (or a short Digital Pipeline body) is read back with ``GET /api/v4/leads/<id>``;
polling asks ``/api/v4/leads?filter[updated_at][from]=``. Stages 142 (won) and 143 (lost) are
``converted`` and ``junk`` in every pipeline; others go through the reverse of ``status_ids``.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

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

NAME = "amocrm"
SECRETS = ("token_env", "hook_secret_env")
OPTIONAL_SECRETS = ("hook_secret_env",)  # only to receive events
INBOUND = ("hook_secret_env", "account_id")
SECRET_QUERY = ("secret",)  # the URL's credential: never stored with the event
SETTINGS = SECRETS + ("base_url", "team", "lead_fields", "status_ids", "stage_ids",
                      "account_id", "score_fields")  # its own keys in crm:
PRICE = "price"  # the lead's own budget field; any other score field is a custom field (id or code)
RATE = (7.0, 7)  # amoCRM allows 7 requests a second
WON, LOST = "142", "143"  # system stages of every pipeline
ACTIONS = {"update": "update", "status": "update", "responsible": "update", "restore": "update",
           "delete": "delete"}
HOOK_EVENTS = ("update_lead", "status_lead", "responsible_lead", "delete_lead")
ITEM = re.compile(r"^leads\[(\w+)\]\[(\d+)\]\[(\w+)\]$")
log = logging.getLogger("hub.crm")


def load_mapping() -> dict:
    return crm.load_mapping(NAME)


def push(lead: dict, settings: dict, external_id: str | None, attempt: int,
         throttle: Callable[[], None]) -> str:
    account = Account(settings, throttle)
    if external_id:
        update(account, lead, settings, external_id)
        return external_id
    if attempt > 1:
        found = find_existing(account, lead["number"])
        if found:
            return found
    created = account.request("POST", "/api/v4/leads/complex", json=[complex_lead(lead, settings)])
    if not isinstance(created, list) or not created or "id" not in created[0]:
        raise TemporaryFailure("amoCRM /api/v4/leads/complex: no lead id in the answer")
    lead_id = str(created[0]["id"])
    if lead.get("message"):
        add_note(account, lead_id, lead["message"])
    return lead_id


def marker(number: int) -> str:
    return f"lead-hub-{number}"


def complex_lead(lead: dict, settings: dict) -> dict:
    mapping = load_mapping()
    source = lead.get("source") or {}
    codes = {**mapping["lead_fields"], **settings.get("lead_fields", {})}
    title = mapping["name"].format(number=lead["number"], who=_who(lead))
    item = {
        "name": f"{title} [{marker(lead['number'])}]",
        "request_id": marker(lead["number"]),
        "custom_fields_values": [_field(code, source[key], None)
                                 for key, code in codes.items() if code and source.get(key)]
        + score_changes(lead, settings).get("custom_fields_values", []),
        "responsible_user_id": assignee_id(lead, settings),
        **score_changes(lead, settings, with_custom=False),
        "_embedded": {"tags": [{"name": lead["channel"]}] if lead.get("channel") else [],
                      "contacts": [contact] if (contact := lead_contact(lead)) else []},
    }
    return {key: value for key, value in item.items() if value}


def lead_contact(lead: dict) -> dict | None:
    mapping = load_mapping()
    kinds = (("phone", "PHONE", mapping["phone_enum"]), ("email", "EMAIL", mapping["email_enum"]))
    values = [_field(code, lead[key], enum) for key, code, enum in kinds if lead.get(key)]
    if not values and not lead.get("name"):
        return None
    return {"name": _who(lead), "custom_fields_values": values} if values else {"name": _who(lead)}


def assignee_id(lead: dict, settings: dict) -> int | None:
    team_id = (lead.get("assignee") or {}).get("id")
    return (settings.get("team") or {}).get(team_id)


def find_existing(account: Account, number: int) -> str | None:
    body = account.request("GET", "/api/v4/leads", params={"query": marker(number)})
    leads = ((body or {}).get("_embedded") or {}).get("leads") or []
    for item in leads:
        if str(item.get("name") or "").endswith(f"[{marker(number)}]"):
            return str(item["id"])
    return None


def add_note(account: Account, lead_id: str, text: str) -> None:
    """Best effort: the lead exists by now, and a failed push would make the retry find it
    without knowing whether the note landed; the message stays in the hub either way."""
    note = [{"note_type": "common", "params": {"text": text}}]
    try:
        account.request("POST", f"/api/v4/leads/{lead_id}/notes", json=note)
    except (TemporaryFailure, PermanentFailure) as exc:
        log.warning("amoCRM lead %s created, its message note failed: %s", lead_id, exc.message)


def status_ids(settings: dict) -> dict:
    """Our status -> status_id (or a list: the first is pushed, all of them read back)."""
    return {**load_mapping()["status_ids"], **(settings.get("status_ids") or {})}


def score_changes(lead: dict, settings: dict, with_custom: bool = True) -> dict:
    """The score as lead fields: ``price`` for the budget field, custom fields by numeric
    ``field_id`` or by ``field_code``."""
    changes, custom = {}, []
    for field, value in crm.score_values(lead, settings).items():
        if field == PRICE:
            changes[PRICE] = round(value)
        elif with_custom:
            key = "field_id" if isinstance(field, int) or str(field).isdigit() else "field_code"
            custom.append({key: int(field) if key == "field_id" else field, "values": [{"value": value}]})
    return changes | ({"custom_fields_values": custom} if custom else {})


def update(account: Account, lead: dict, settings: dict, lead_id: str) -> None:
    sent = crm.moved(lead, settings, status_ids(settings), assignee_id(lead, settings))
    changes = {key: value for key, value in (("status_id", sent["status"]), ("responsible_user_id", sent["user"]))
               if value}
    changes.update(score_changes(lead, settings))  # the hub's own: sent on every update
    if changes:
        account.request("PATCH", f"/api/v4/leads/{lead_id}", json=changes)


class Account:
    """One amoCRM account's API v4."""

    def __init__(self, settings: dict, throttle: Callable[[], None]):
        self.base_url = settings["base_url"].rstrip("/")
        self.headers = {"Authorization": f"Bearer {settings['token']}"}
        self.timeout = settings.get("timeout", 10)
        self.throttle = throttle

    def request(self, method: str, path: str, **kwargs):
        """The JSON answer, ``None`` for 204 (amoCRM's empty search result)."""
        self.throttle()
        try:
            response = requests.request(method, self.base_url + path, headers=self.headers,
                                        timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise TemporaryFailure(f"amoCRM {method} {path}: {exc}") from exc
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400 or body is None:
            raise failure(response, body if isinstance(body, dict) else {})
        return body


def failure(response: requests.Response, body: dict) -> Exception:
    status = response.status_code
    detail = _problem(body) or response.reason or "no JSON answer"
    if status == 401:
        return PermanentFailure(f"amoCRM token rejected (expired?): {detail}")
    if status == 404:
        return NotFound(f"amoCRM HTTP 404: {detail}")
    if status == 429 or status >= 500 or status < 400:
        return TemporaryFailure(f"amoCRM HTTP {status}: {detail}", retry_after=_retry_after(response))
    return PermanentFailure(f"amoCRM HTTP {status}: {detail}")


class NotFound(PermanentFailure):
    """The account has no such lead."""


def _problem(body: dict) -> str:
    """A problem+json body as text, naming each validation error's path."""
    errors = [f"{error.get('path')}: {error.get('detail')} ({error.get('code')})"
              for entry in body.get("validation-errors") or [] for error in entry.get("errors") or []]
    parts = [body.get("title"), body.get("detail"), *errors]
    return "; ".join(dict.fromkeys(str(part) for part in parts if part))  # unique, in order


def _who(lead: dict) -> str:
    return lead.get("name") or lead.get("phone") or lead.get("email") or "—"


def _field(code: str, value, enum_code: str | None) -> dict:
    entry = {"value": str(value), "enum_code": enum_code} if enum_code else {"value": str(value)}
    return {"field_code": code, "values": [entry]}


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


# --- events back from the account ----------------------------------------------------------


def verify(inbound: Inbound, settings: dict) -> None:
    expected, account = settings.get("hook_secret"), settings.get("account_id")
    if not expected or not account:
        raise Forbidden("this target receives no events: set its hook_secret_env and account_id",
                        {"secret": "not configured"})
    given = next((value for name, value in inbound.query if name == "secret"), "")
    if not given or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise Forbidden("the URL's secret does not match", {"secret": "invalid"})
    if crm.form_fields(inbound).get("account[id]") != str(account):
        raise Forbidden("account[id] is not the configured account", {"account[id]": "invalid"})


def parse(inbound: Inbound, settings: dict) -> list[Parsed]:
    items = lead_items(crm.form_fields(inbound))
    if not items:
        return [Parsed("other", ignore="no lead in the webhook (another entity's event)")]
    key = delivery_key(items)
    return [parsed_item(action, item, key) for action, item in items]


def lead_items(fields: dict[str, str]) -> list[tuple[str, dict]]:
    """``leads[<action>][<n>][<field>]`` grouped into one dict per item, in order."""
    grouped: dict[tuple[str, int], dict] = {}
    for name, value in fields.items():
        match = ITEM.match(name)
        if match:
            action, index, field = match.groups()
            grouped.setdefault((action, int(index)), {})[field] = value
    return [(action, grouped[(action, index)]) for action, index in sorted(grouped, key=lambda k: (k[0], k[1]))]


def parsed_item(action: str, item: dict, key: str) -> Parsed:
    lead_id = (item.get("id") or "").strip()
    if not lead_id.isdigit():
        raise BadRequest(f"leads[{action}][n][id] is not a lead id", {f"leads[{action}][id]": "required"})
    if action not in ACTIONS:
        return Parsed(f"lead.{action}", {"id": lead_id}, delivery_key=key,
                      ignore=f"leads[{action}]: the hub follows only changes of the leads it pushed")
    kind = ACTIONS[action]
    lead = CrmLead(lead_id, deleted=True) if kind == "delete" else item_state(item)
    return Parsed(f"lead.{action}", {"id": lead_id}, delivery_key=key,
                  extra={"crm": CrmEvent(kind, lead_id, lead)})


def item_state(item: dict) -> CrmLead | None:
    """The lead as a webhook item gives it; ``None`` for Digital Pipeline's short form, which
    names neither the responsible user nor the time."""
    moment = item.get("updated_at") or item.get("last_modified")
    if not moment or "responsible_user_id" not in item:
        return None
    return CrmLead(item["id"].strip(), status=crm.text(item.get("status_id")),
                   user=crm.text(item.get("responsible_user_id")), modified_at=_unix(moment),
                   modified_by=crm.text(item.get("modified_user_id")))


def delivery_key(items: list[tuple[str, dict]]) -> str:
    """One POST, however many items: what changed, to what, when (a retry repeats it)."""
    fields = ("id", "status_id", "responsible_user_id", "updated_at", "last_modified")
    text = "|".join(f"{action}:" + ",".join(item.get(name, "") for name in fields) for action, item in items)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def reply(parsed: Parsed | None) -> None:
    return None  # any 2xx; amoCRM retries other answers


def read_back(event: CrmEvent, settings: dict, throttle: Callable[[], None]) -> CrmLead:
    if event.lead is not None:
        return event.lead
    try:
        found = Account(settings, throttle).request("GET", f"/api/v4/leads/{event.external_id}")
    except NotFound:
        found = None
    return lead_state(found) if found else CrmLead(event.external_id, deleted=True)


def changed_since(settings: dict, since: datetime, throttle: Callable[[], None]) -> Iterator[list[CrmLead]]:
    """Pages of 250 leads updated at or after ``since``, oldest change first."""
    account, page = Account(settings, throttle), 1
    while page:
        params = {"filter[updated_at][from]": int(since.timestamp()), "order[updated_at]": "asc",
                  "limit": 250, "page": page}
        body = account.request("GET", "/api/v4/leads", params=params) or {}
        yield [lead_state(item) for item in (body.get("_embedded") or {}).get("leads") or []]
        page = page + 1 if (body.get("_links") or {}).get("next") else None


def lead_state(fields: dict) -> CrmLead:
    return CrmLead(str(fields["id"]), status=crm.text(fields.get("status_id")),
                   user=crm.text(fields.get("responsible_user_id")),
                   modified_at=_unix(fields.get("updated_at")),
                   modified_by=crm.text(fields.get("updated_by")), deleted=bool(fields.get("is_deleted")))


def hub_status(lead: CrmLead, settings: dict) -> str | None:
    if lead.status == WON:
        return "converted"
    if lead.status == LOST:
        return "junk"
    return crm.reverse(status_ids(settings)).get(lead.status or "")


def hub_stage(lead: CrmLead, settings: dict) -> str | None:
    """A pipeline stage of the hub this CRM stage stands for (``stage_ids``); never a closed one."""
    return None if hub_status(lead, settings) in ("converted", "junk") else crm.hub_stage(lead.status, settings)


def sent_state(lead: dict, settings: dict, created: bool) -> dict:
    """What the push sent (``crm.moved``: a create lands in the pipeline's first stage); ``hub`` is
    the lead as the hub had it."""
    return crm.sent_state(crm.moved(lead, settings, status_ids(settings), assignee_id(lead, settings), created), lead)


def connect(settings: dict, url: str, throttle: Callable[[], None]) -> list[str]:
    """Account webhooks carry no signature: the URL's secret is what the hub checks."""
    secret = settings.get("hook_secret")
    if not secret or not settings.get("account_id"):
        raise PermanentFailure("set hook_secret_env and account_id on this target first")
    return [
        "In amoCRM: Settings > Integrations > Webhooks, add a webhook:",
        f"  URL: {url}?secret={secret}",
        f"  events: {', '.join(HOOK_EVENTS)} (lead changed, stage changed, responsible changed, "
        "lead deleted)",
        "Keep the URL secret: it is the only credential amoCRM sends.",
    ]


def _unix(value) -> datetime | None:
    text = str(value or "").strip()
    return datetime.fromtimestamp(int(text), UTC) if text.isdigit() else None
