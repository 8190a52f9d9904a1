"""The OpenAPI 3.1 document of the intake endpoints and the JSON API (``GET /api/openapi.json``).

Built from what the hub runs: the configured forms and providers, each provider module's
``METHODS``, the API's limits and statuses. A test matches every documented operation against
the app's routes and every route against the document, so the two cannot drift apart.
"""
from __future__ import annotations

from typing import Any

from connectors.base import MAX_WHOLE_NUMBER
from hub import registry
from hub.pipeline.normalise import endpoint_settings
from hub.reports import queries

ERROR_STATUSES = {
    "400": "malformed: a field, header, query parameter or the body is not what it should be",
    "401": "missing signature, secret or bearer token", "403": "wrong signature, secret or token",
    "404": "unknown form, provider, path or record", "405": "a method this endpoint does not take",
    "409": "the record is not in a state that allows this",
    "413": "body over the size limit", "415": "unsupported content type",
    "422": "valid syntax, but a required field is missing or unusable", "429": "rate limit reached",
    "503": "database down: nothing was accepted, retry later",
}
INTAKE_ERRORS = ("400", "401", "403", "404", "405", "413", "415", "422", "429", "503")
API_ERRORS = ("400", "401", "403")
TEXT = {"type": "string"}
NULLABLE_TEXT = {"type": ["string", "null"]}
DAY = {"type": "string", "format": "date"}
MOMENT = {"type": "string", "format": "date-time"}
NULLABLE_MOMENT = {"type": ["string", "null"], "format": "date-time"}


def document(config: dict, page_limit: int, event_statuses: tuple, lead_statuses: tuple) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Lead Hub", "version": "1", "description": __doc__.split("\n\n")[0]},
        "paths": intake_paths(config) | api_paths(page_limit, event_statuses, lead_statuses),
        "components": {"schemas": schemas(event_statuses, lead_statuses), "responses": error_responses(),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def configured_providers(config: dict) -> dict[str, dict[str, Any]]:
    """``{kind: {provider: module}}`` for the provider endpoints this config serves."""
    found: dict[str, dict[str, Any]] = {}
    for kind in ("telephony", "sms"):
        for provider in registry.providers(kind):
            if endpoint_settings(config, kind, provider, None) is not None:
                found.setdefault(kind, {})[provider] = registry.intake(kind, provider)
    return found


def error_responses() -> dict:
    return {status: {"description": text, "content": {"application/json": {"schema": ref("Error")}}}
            for status, text in ERROR_STATUSES.items()}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def errors(*statuses: str) -> dict:
    return {status: {"$ref": f"#/components/responses/{status}"} for status in statuses}


def json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def path_parameter(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def query_parameter(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


# --- intake ----------------------------------------------------------------------------------

FLAT_FORM = {"type": "object", "additionalProperties": TEXT}
EVENT_ID_HEADER = {"X-Hub-Event-Id": {"description": "the stored event", "schema": TEXT}}


def intake_paths(config: dict) -> dict:
    paths = {"/hooks/forms/{key}": form_operations(sorted(config["forms"]))}
    for kind, providers in configured_providers(config).items():
        for provider, module in sorted(providers.items()):
            paths[f"/hooks/{kind}/{provider}"] = provider_operations(module, with_subpath=False)
            paths[f"/hooks/{kind}/{provider}/{{subpath}}"] = provider_operations(module, with_subpath=True)
    return paths


def form_operations(keys: list[str]) -> dict:
    key = path_parameter("key", {"type": "string", "enum": keys} if keys else TEXT, "a key under forms:")
    secret = {"name": "X-Hub-Secret", "in": "header", "required": False, "schema": TEXT}
    body = {"required": True, "content": {
        "application/x-www-form-urlencoded": {"schema": FLAT_FORM},
        "multipart/form-data": {"schema": FLAT_FORM},
        "application/json": {"schema": {"type": "object"}}}}
    accepted = {"description": "stored (202) or a repeat of a stored one (200)", "headers": EVENT_ID_HEADER,
                "content": json_content(ref("Accepted"))}
    post = {"summary": "a form submission", "parameters": [key, secret], "requestBody": body,
            "security": [], "responses": {
                "202": accepted, "200": {**accepted, "content": {
                    **json_content(ref("Accepted")), "text/plain": {"schema": TEXT}}},
                "303": {"description": "a browser post, sent on to the form's redirect"},
                **errors(*INTAKE_ERRORS)}}
    options = {"summary": "the browser's CORS preflight", "parameters": [key], "security": [],
               "responses": {"204": {"description": "allowed origins get the CORS headers"},
                             **errors("404")}}
    return {"post": post, "options": options}


def provider_operations(module: Any, with_subpath: bool) -> dict:
    parameters = [path_parameter("subpath", TEXT, "the provider's event path (slashes allowed)")] \
        if with_subpath else []
    reply = {"description": "the provider's own answer (TwiML, an echo, a plain 100) or the hub's JSON",
             "headers": EVENT_ID_HEADER, "content": {
                 "text/plain": {"schema": TEXT}, "text/xml": {"schema": TEXT},
                 **json_content(ref("Accepted"))}}
    operations = {}
    for method in getattr(module, "METHODS", ("POST",)):
        operation = {"summary": f"a {module.NAME} webhook", "parameters": list(parameters), "security": [],
                     "responses": {"200": reply, "202": reply, **errors(*INTAKE_ERRORS)}}
        if method == "POST":
            operation["requestBody"] = {"required": False, "content": {
                "application/x-www-form-urlencoded": {"schema": FLAT_FORM}}}
        operations[method.lower()] = operation
    return operations


# --- API -------------------------------------------------------------------------------------

BEARER = [{"bearer": []}]
RECORD_ID = {"type": "integer", "minimum": 1, "maximum": MAX_WHOLE_NUMBER}


def read(schema: str, parameters: list, *statuses: str) -> dict:
    """An operation behind the bearer token answering 200 with ``schema``."""
    return {"security": BEARER, "parameters": parameters, "responses": {
        "200": {"description": schema, "content": json_content(ref(schema))}, **errors(*API_ERRORS, *statuses)}}


def with_body(operation: dict, body: str, *statuses: str) -> dict:
    operation["requestBody"] = {"required": False, "content": json_content(ref(body))}
    operation["responses"] |= errors(*statuses)
    return operation


def api_paths(page_limit: int, event_statuses: tuple, lead_statuses: tuple) -> dict:
    page = [query_parameter("limit", {"type": "integer", "minimum": 1, "maximum": page_limit}),
            query_parameter("cursor", RECORD_ID, "next_cursor of the previous page")]
    events = [query_parameter(name, TEXT) for name in ("kind", "provider")]
    leads = [query_parameter(name, TEXT) for name in ("phone", "email", "channel", "utm_source", "assignee", "stage")]
    number, task_id = path_parameter("number", RECORD_ID), path_parameter("task_id", RECORD_ID)
    return {
        "/api/events": {"get": read("EventPage", page + events + [
            query_parameter("status", {"enum": list(event_statuses)})])},
        "/api/events/{event_id}": {"get": read("Event", [path_parameter("event_id", TEXT)], "404")},
        "/api/leads": {"get": read("LeadPage", page + leads + [
            query_parameter("status", {"enum": list(lead_statuses)}),
            query_parameter("class", {"enum": ["A", "B", "C"]}, "the score's class")])},
        "/api/leads/{number}": {"get": read("Lead", [number], "404"),
                                "patch": with_body(read("Lead", [number], "404"), "LeadChanges", "413", "422")},
        "/api/leads/{number}/score": {"post": with_body(read("Lead", [number], "404"), "ScoreChange",
                                                        "403", "409", "413", "422")},
        "/api/tasks/{task_id}/done": {"post": with_body(read("Task", [task_id], "404"), "TaskOutcome", "413")},
        "/api/openapi.json": {"get": {"security": BEARER, "responses": {
            "200": {"description": "this document", "content": json_content({"type": "object"})},
            **errors(*API_ERRORS)}}},
    } | service_paths() | report_paths()


def report_paths() -> dict:
    common = [query_parameter("from", DAY), query_parameter("to", DAY),
              query_parameter("model", {"enum": list(queries.MODELS)})]
    common += [query_parameter(name, TEXT) for name in queries.FILTERS]
    by = query_parameter("by", {"enum": list(queries.DIMENSIONS)})
    pipeline = query_parameter("pipeline", TEXT, "one configured pipeline only (default: every one); "
                                                 "an unknown name is a 400 naming pipeline")
    return {"/api/reports/channels": {"get": read("Report", [*common, by])},
            "/api/reports/managers": {"get": read("Report", common)},
            "/api/reports/timeseries": {"get": read("Report", common)},
            "/api/reports/funnel": {"get": read("Report", [*common, pipeline])},
            "/api/reports/scores": {"get": read("Report", common)}}


def service_paths() -> dict:
    return {
        "/healthz": {"get": {"security": [], "responses": {
            "200": {"description": "all up", "content": json_content(ref("Health"))},
            "503": {"description": "names what is down", "content": json_content(ref("Health"))}}}},
        "/metrics": {"get": {"security": [], "responses": {
            "200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": TEXT}}}}}},
    }


def schemas(event_statuses: tuple, lead_statuses: tuple) -> dict:
    return {
        "Error": {"type": "object", "required": ["error", "fields"], "properties": {
            "error": TEXT, "fields": {"type": "object", "additionalProperties": TEXT}}},
        "Accepted": {"type": "object", "required": ["event_id", "status"], "properties": {
            "event_id": TEXT, "status": {"enum": ["accepted", "duplicate"]}}},
        "Event": event_schema(event_statuses), "Task": TASK, "Lead": lead_schema(lead_statuses),
        "EventPage": page_of("Event"), "LeadPage": page_of("Lead"),
        "LeadChanges": {"type": "object", "properties": {"status": {"enum": list(lead_statuses)},
                                                         "assignee": TEXT, "stage": TEXT, "outcome": TEXT}},
        "Report": {"type": "object", "required": ["from", "to", "timezone", "model", "filters"]},
        "TaskOutcome": {"type": "object", "properties": {"outcome": TEXT}},
        "ScoreChange": {"type": "object", "required": ["change", "by"], "properties": {
            "change": {"enum": ["up", "down", "reset"]}, "by": TEXT}},
        "Health": {"type": "object", "required": ["db", "redis"], "properties": {
            "db": TEXT, "redis": TEXT, "mailboxes": {"type": "object", "additionalProperties": TEXT}}},
    }


def page_of(item: str) -> dict:
    return {"type": "object", "required": ["items", "next_cursor"], "properties": {
        "items": {"type": "array", "items": ref(item)}, "next_cursor": NULLABLE_TEXT}}


def event_schema(statuses: tuple) -> dict:
    return {"type": "object", "required": ["event_id", "channel", "provider", "status", "lead_number",
                                           "error", "received_at"], "properties": {
        "event_id": TEXT, "channel": TEXT, "kind": TEXT, "provider": TEXT, "endpoint": NULLABLE_TEXT,
        "status": {"enum": list(statuses)}, "lead_number": {"type": ["integer", "null"]},
        "error": NULLABLE_TEXT, "attempts": {"type": "integer"}, "received_at": MOMENT,
        "processed_at": NULLABLE_MOMENT}}


def lead_schema(statuses: tuple) -> dict:
    return {"type": "object", "required": ["number", "status", "name", "phone", "email", "message", "channel",
                                           "source", "touches", "assignee", "tasks", "created_at"], "properties": {
        "number": {"type": "integer"}, "status": {"enum": list(statuses)},
        "name": NULLABLE_TEXT, "phone": NULLABLE_TEXT, "email": NULLABLE_TEXT, "message": NULLABLE_TEXT,
        "channel": {"enum": ["form", "mail", "call", "sms"]}, "source": SOURCE, "last_source": SOURCE,
        "touches": {"type": "array", "items": {"type": "object"}},
        "assignee": {"type": ["object", "null"], "properties": {"id": TEXT, "name": TEXT}},
        "assignment_reason": NULLABLE_TEXT, "tasks": {"type": "array", "items": ref("Task")},
        "notifications": {"type": "array", "items": {"type": "object"}},
        "sync": {"type": "array", "items": {"type": "object"}},
        "problems": {"type": "object", "additionalProperties": TEXT,
                     "description": "malformed values kept aside: field -> what is wrong"},
        "created_at": MOMENT, "updated_at": NULLABLE_MOMENT, "handled_at": NULLABLE_MOMENT,
        "history": {"type": "array", "items": {"type": "object"}},
        "stage": {"type": ["object", "null"], "properties": {
            "pipeline": TEXT, "name": TEXT, "entered_at": MOMENT, "deadline": NULLABLE_MOMENT,
            "overdue": {"type": "boolean"}}},
        "score": {"type": ["object", "null"], "required": ["class", "probability", "value", "details"], "properties": {
            "class": {"enum": ["A", "B", "C"]}, "probability": {"type": ["number", "null"]},
            "value": {"type": ["number", "null"]}, "details": {"type": "object"}}}}}


SOURCE = {"type": "object", "additionalProperties": NULLABLE_TEXT}
TASK = {"type": "object", "required": ["id", "kind", "title", "due_at", "assignee", "status"], "properties": {
    "id": {"type": "integer"}, "kind": TEXT, "title": TEXT, "due_at": NULLABLE_MOMENT,
    "assignee": NULLABLE_TEXT, "status": TEXT, "outcome": NULLABLE_TEXT,
    "step": {"type": ["integer", "null"]}, "closed_at": NULLABLE_MOMENT}}
