"""amoCRM (Kommo) CRM target (``crm: [{target: amocrm, base_url: ..., token_env: ...}]``), API v4
with a bearer token (shared/formats/amocrm.md); field codes come from ``mappings/crm/amocrm.yaml``.

* create: ``POST /api/v4/leads/complex`` with one lead, its contact (PHONE / EMAIL) and the
  channel as a tag; the client's message follows as a common note on the lead.
* look-before-create: amoCRM has no idempotency key on create (``request_id`` is only echoed
  back), so the lead's name ends with the marker ``[lead-hub-<number>]``. A retry (attempt > 1)
  first searches ``GET /api/v4/leads?query=lead-hub-<number>`` (a search over the lead's filled
  fields, the name among them) and takes only a lead whose name ends with that exact marker:
  the search matches substrings, so ``lead-hub-12`` also finds ``lead-hub-123``. A name kept in
  a field is searchable where tags may not be, and one tag per lead would flood the tag list.
* update: ``PATCH /api/v4/leads/<id>`` with the mapped ``status_id`` / ``responsible_user_id``.
"""
from __future__ import annotations

import logging
from typing import Callable

import requests

from connectors import crm
from connectors.base import PermanentFailure, TemporaryFailure

NAME = "amocrm"
SECRETS = ("token_env",)
SETTINGS = SECRETS + ("base_url", "team", "lead_fields", "status_ids")  # its own keys in crm:
RATE = (7.0, 7)  # amoCRM allows 7 requests a second
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
                                 for key, code in codes.items() if code and source.get(key)],
        "responsible_user_id": assignee_id(lead, settings),
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


def find_existing(account: "Account", number: int) -> str | None:
    body = account.request("GET", "/api/v4/leads", params={"query": marker(number)})
    leads = ((body or {}).get("_embedded") or {}).get("leads") or []
    for item in leads:
        if str(item.get("name") or "").endswith(f"[{marker(number)}]"):
            return str(item["id"])
    return None


def add_note(account: "Account", lead_id: str, text: str) -> None:
    """Best effort: the lead exists by now, and a failed push would make the retry find it
    without knowing whether the note landed; the message stays in the hub either way."""
    note = [{"note_type": "common", "params": {"text": text}}]
    try:
        account.request("POST", f"/api/v4/leads/{lead_id}/notes", json=note)
    except (TemporaryFailure, PermanentFailure) as exc:
        log.warning("amoCRM lead %s created, its message note failed: %s", lead_id, exc.message)


def update(account: "Account", lead: dict, settings: dict, lead_id: str) -> None:
    statuses = {**load_mapping()["status_ids"], **settings.get("status_ids", {})}
    changes = {"status_id": statuses.get(lead.get("status")),
               "responsible_user_id": assignee_id(lead, settings)}
    changes = {key: value for key, value in changes.items() if value}
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
    if status == 429 or status >= 500 or status < 400:
        return TemporaryFailure(f"amoCRM HTTP {status}: {detail}", retry_after=_retry_after(response))
    return PermanentFailure(f"amoCRM HTTP {status}: {detail}")


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
