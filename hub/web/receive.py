"""Intake: ``/hooks/<kind>/<provider>[/<subpath>]``. Verify, parse, validate, store raw, then
answer. Nothing is acknowledged before its raw event is committed. CRM events come to
``/hooks/crm/<target name>``: the target's module checks them, and they wait for the CRM
read-back job (``hub.delivery.crm_readback``), not the lead pipeline.

The intake is served straight from WSGI (``IntakeServer``, in front of the Flask app): it needs
none of Flask's request context, routing or error machinery, which cost about a fifth of an
intake request. Every other path goes on to the app.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import bindparam, exists, insert, or_, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from connectors.base import ConnectorError, Inbound, Parsed, clean_text
from hub import registry
from hub.delivery import crm_readback
from hub.mapping import load_mapping
from hub.pipeline.normalise import endpoint_settings, fingerprint, storable_key
from hub.store import ratelimit, rejects
from hub.store.journal import INTAKE_COLUMNS, journal_table, stored_table
from hub.store.models import RawEvent, new_event_id
from hub.store.prepared import Prepared
from hub.web import metrics, suspend
from hub.web.body import read_body
from hub.web.errors import HubError, hub_error_response

log = logging.getLogger("hub.receive")
KIND_CHANNEL = {"forms": "form", "telephony": "call", "sms": "sms"}
# Never stored: credentials of the request itself (the form secret, API tokens, cookies).
DROPPED_HEADERS = {"authorization", "cookie", "x-hub-secret", "proxy-authorization"}
FORM_METHODS = ("POST",)  # plus OPTIONS, the browser's CORS preflight
MAX_SUBPATH = 200  # the stored column's width; no provider path comes near it
# /hooks/<kind>/<name> and /hooks/<kind>/<name>/<subpath>; anything else under /hooks is the app's 404
HOOK_PATH = re.compile(r"/hooks/([^/]+)/([^/]+)(?:/([^/].*))?", re.DOTALL)


class IntakeServer:
    """WSGI: the intake's paths answered here, every other one passed on to ``app``."""

    def __init__(self, app, hub):
        self.app, self.hub = app, hub

    def __call__(self, environ: dict, start_response):
        route = hook_route(environ.get("PATH_INFO", ""))
        if route is None:
            return self.app(environ, start_response)
        return handle(self.hub, Request(environ), *route)(environ, start_response)


def hook_route(path_info: str) -> tuple[str, str, str] | None:
    """(kind, name, subpath) of an intake path as WSGI passes it (UTF-8 read as latin-1)."""
    if not path_info.startswith("/hooks/"):
        return None
    match = HOOK_PATH.fullmatch(path_info.encode("latin-1", "replace").decode("utf-8", "replace"))
    return (match[1], match[2], match[3] or "") if match else None


@dataclass
class Endpoint:
    kind: str
    provider: str  # the provider module's name (a form's mapping)
    key: str | None  # the form key or the CRM target's name; None for provider endpoints
    module: ModuleType
    settings: dict
    hub: Any
    request: Request
    channel: str | None = None  # the module's CHANNEL unless given

    @property
    def job(self) -> str:
        return "crm" if self.kind == crm_readback.KIND else "pipeline"


def resolve(hub, request: Request, kind: str, name: str) -> Endpoint:
    config = hub.config
    if kind == crm_readback.KIND:
        target = crm_readback.targets(hub).get(name)
        if target is None:
            raise HubError(404, f"unknown CRM target {name!r}", {"target": "not configured to report changes"})
        return Endpoint(kind, target.module.NAME, name, target.module, target.settings, hub, request, channel=kind)
    if kind == "forms":
        form = config["forms"].get(name)
        if form is None:
            raise HubError(404, f"unknown form {name!r}", {"form": "not configured"})
        settings = endpoint_settings(config, kind, form["mapping"], name)
        return Endpoint(kind, form["mapping"], name, registry.intake(kind, form["mapping"]), settings, hub, request)
    settings = endpoint_settings(config, kind, name, None) if registry.has(kind, name) else None
    if settings is None:
        raise HubError(404, f"unknown provider {kind}/{name}", {"provider": "not configured"})
    return Endpoint(kind, name, None, registry.intake(kind, name), settings, hub, request)


def handle(hub, request: Request, kind: str, name: str, subpath: str) -> Response:
    """The answer to one intake request, errors included (as JSON naming the field)."""
    try:
        return receive(resolve(hub, request, kind, name), subpath)
    except HubError as error:
        return hub_error_response(error)
    except Exception:
        log.exception("intake failed on %s %s", request.method, request.path)
        return hub_error_response(HubError(500, "internal error: nothing was accepted, retry later"))


def receive(endpoint: Endpoint, subpath: str) -> Response:
    if endpoint.request.method == "OPTIONS" and endpoint.kind == "forms":
        return with_cors(endpoint, Response(status=204))
    try:
        check_method(endpoint)
        response = intake(endpoint, subpath)
    except HubError as error:
        metrics.observe_intake(endpoint.kind, endpoint.provider, "rejected")
        rejects.count(endpoint.hub, f"{endpoint.kind}/{endpoint.key or endpoint.provider}", error.status)
        raise error
    return with_cors(endpoint, response)


def allowed_methods(endpoint: Endpoint) -> tuple[str, ...]:
    """What the provider documents (forms: POST); never HEAD or OPTIONS, so nothing is stored
    for a probe."""
    return FORM_METHODS if endpoint.kind == "forms" else getattr(endpoint.module, "METHODS", ("POST",))


def check_method(endpoint: Endpoint) -> None:
    allowed, method = allowed_methods(endpoint), endpoint.request.method
    if method not in allowed:
        allow = allowed + (("OPTIONS",) if endpoint.kind == "forms" else ())
        raise HubError(405, f"{method} is not accepted here: use {' or '.join(allowed)}",
                       {"method": f"use {', '.join(allowed)}"}, headers={"Allow": ", ".join(allow)})


def intake(endpoint: Endpoint, subpath: str) -> Response:
    if len(subpath) > MAX_SUBPATH:
        raise HubError(404, "no such path", {"path": f"longer than {MAX_SUBPATH} characters"})
    if endpoint.kind != crm_readback.KIND:  # a CRM's bulk edit sends one event per lead
        limit_rate(endpoint)
    inbound = build_inbound(endpoint, subpath)
    try:
        endpoint.module.verify(inbound, endpoint.settings)
        parsed = endpoint.module.parse(inbound, endpoint.settings)
    except ConnectorError as error:
        raise HubError(error.status, error.message, error.fields) from error
    if parsed and all(item.handshake for item in parsed):
        return provider_reply(endpoint, parsed[0]) or Response("ok", 200, mimetype="text/plain")
    validate(endpoint, parsed)
    event_id, duplicate = store(endpoint, without_credentials(endpoint, inbound), parsed)
    metrics.observe_intake(endpoint.kind, endpoint.provider, "duplicate" if duplicate else "accepted")
    if not duplicate:
        endpoint.hub.kicker.kick_soon(endpoint.job)
    response = answer(endpoint, parsed, event_id, duplicate)
    response.headers["X-Hub-Event-Id"] = event_id
    return response


def limit_rate(endpoint: Endpoint) -> None:
    per_minute = endpoint.hub.config["limits"]["requests_per_minute"]
    scope = f"{endpoint.kind}/{endpoint.key or endpoint.provider}"
    allowed, retry_after = ratelimit.allow(endpoint.hub, endpoint.request.remote_addr or "-", scope, per_minute)
    if not allowed:
        raise HubError(429, f"too many requests: at most {per_minute} a minute",
                       {"rate": "limit reached"}, headers={"Retry-After": str(retry_after)})


def public_url(hub, request: Request) -> str:
    """The URL as the provider called it: path and query exactly as sent (signatures such as
    Twilio's are computed over them), behind ``public_url`` when one is configured."""
    environ = request.environ
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not target:
        query = environ.get("QUERY_STRING", "")
        target = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="/;=,~!$&'()*+:@") \
            + (f"?{query}" if query else "")
    base = hub.config.get("public_url") or f"{environ['wsgi.url_scheme']}://{request.host}"
    return base.rstrip("/") + target


def request_headers(environ: dict) -> dict[str, str]:
    """The request's headers by lower-case name, as ``request.headers`` lists them."""
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                headers[key[5:].replace("_", "-").lower()] = value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers[key.replace("_", "-").lower()] = value
    return headers


def build_inbound(endpoint: Endpoint, subpath: str) -> Inbound:
    hub, request = endpoint.hub, endpoint.request
    headers = request_headers(request.environ)
    body = read_body(request, hub.config["limits"]["body_bytes"])
    return Inbound(method=request.method, url=public_url(hub, request), subpath=subpath,
                   query=tuple(request.args.items(multi=True)), headers=headers, body=body,
                   remote_addr=request.remote_addr)


def without_credentials(endpoint: Endpoint, inbound: Inbound) -> Inbound:
    """The delivery to store: query parameters a module names as its credential (an amoCRM
    webhook's ``secret``) are dropped; they were checked, and parsing never needs them."""
    names = set(getattr(endpoint.module, "SECRET_QUERY", ()))
    if not names or not any(name in names for name, _ in inbound.query):
        return inbound
    query = tuple((name, value) for name, value in inbound.query if name not in names)
    base, _, _ = inbound.url.partition("?")
    url = base + (f"?{urlencode(query)}" if query else "")
    return dataclasses.replace(inbound, url=url, query=query)


def validate(endpoint: Endpoint, parsed: list[Parsed]) -> None:
    """A form's ``required`` fields must be present and usable. A malformed value of any other
    field refuses nothing: the pipeline keeps it aside as one of the lead's ``problems``."""
    required = (endpoint.settings.get("required") or []) if endpoint.kind == "forms" else []
    if not required:
        return
    mapping = load_mapping(endpoint.module.MAPPING)
    region, outputs = endpoint.hub.config["region"], frozenset(required)
    for item in parsed:
        if item.ignore:
            continue
        mapped = mapping.apply(item.fields, region, outputs)
        problems = {field: mapped.invalid.get(field, "required") for field in required
                    if not (mapped.lead.get(field) or mapped.source.get(field))}
        if problems:
            raise HubError(422, "missing or invalid fields: " + ", ".join(sorted(problems)), problems)


def delivery_key(endpoint: Endpoint, parsed: list[Parsed]) -> str | None:
    keys = [item.delivery_key for item in parsed if item.delivery_key]
    if not keys:
        return None
    return storable_key(f"{endpoint.kind}/{endpoint.provider}/{endpoint.key or ''}/{keys[0]}")


def raw_event_values(endpoint: Endpoint, inbound: Inbound, parsed: list[Parsed]) -> dict:
    ignored = [item.ignore for item in parsed if item.ignore]
    all_ignored = bool(parsed) and len(ignored) == len(parsed)
    form_fp = None
    if endpoint.kind == "forms" and parsed and not all_ignored:
        form_fp = fingerprint(endpoint.key, parsed[0].fields)
    return {
        "event_id": new_event_id(), "channel": endpoint.channel or endpoint.module.CHANNEL, "kind": endpoint.kind,
        "provider": endpoint.provider, "endpoint": endpoint.key,
        "delivery_key": delivery_key(endpoint, parsed), "fingerprint": form_fp,
        "method": inbound.method, "url": clean_text(inbound.url), "subpath": clean_text(inbound.subpath),
        "query": [list(pair) for pair in inbound.query], "body": inbound.body,
        "headers": {k: v for k, v in inbound.headers.items() if k not in DROPPED_HEADERS},
        "remote_addr": inbound.remote_addr, "received_at": endpoint.hub.now(), "attempts": 0,
        "status": "ignored" if all_ignored else "pending",
        "error": clean_text(ignored[0]) if all_ignored else None,
    }


def store(endpoint: Endpoint, inbound: Inbound, parsed: list[Parsed]) -> tuple[str, bool]:
    """Commit the raw event unless it repeats one; (event id, whether it was already there).

    One statement inserts the row only when no earlier event has its delivery key (or, for a
    form, its fingerprint within the duplicate window). On SQLite the row goes to the intake
    journal (``hub.store.journal``), which the pipeline files into raw_events. Served by ``hub
    web``, the statement joins the web process's next group commit (``hub.store.groupcommit``);
    either way this returns only once the row is committed."""
    values = raw_event_values(endpoint, inbound, parsed)
    hub = endpoint.hub
    since = values["received_at"] - hub.config["limits"]["duplicate_window"]
    into_journal = hub.db.journal is not None
    try:
        inserted = commit(endpoint, functools.partial(insert_event, into_journal, {**values, "since": since}))
    except IntegrityError:  # the same delivery, committed by a concurrent request
        inserted = False
    except OperationalError as error:
        log.error("database unavailable, delivery refused: %s", error.orig)
        raise HubError(503, "database unavailable, nothing was accepted: retry later",
                       headers={"Retry-After": "30"}) from error
    if inserted:
        return values["event_id"], False
    return find_original(hub, values, since), True


def commit(endpoint: Endpoint, write):
    """``write(connection)`` committed: in the server's group commit when it has one, else alone."""
    committer = endpoint.request.environ.get(suspend.GROUP_COMMIT)
    if committer is None:
        with endpoint.hub.db.intake.write_connection() as connection:
            return write(connection)
    return suspend.wait(committer.submit(write))


def insert_event(into_journal: bool, values: dict, connection) -> bool:
    """Insert the raw event unless an earlier copy is there; whether it went in."""
    if values["fingerprint"] and connection.dialect.name == "postgresql":  # two clicks at once
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:fp))"), {"fp": values["fingerprint"]})
    shape = (into_journal, bool(values["delivery_key"]), bool(values["fingerprint"]))
    return prepared_insert(*shape, connection.dialect).returns_row(connection, values)


@functools.lru_cache(maxsize=16)
def prepared_insert(into_journal: bool, by_key: bool, by_fingerprint: bool, dialect) -> Prepared:
    return Prepared(insert_unless_repeated(into_journal, by_key, by_fingerprint), dialect)


def repeats(table, by_key: bool, by_fingerprint: bool) -> list:
    conditions = []
    if by_key:
        conditions.append(table.c.delivery_key == bindparam("delivery_key"))
    if by_fingerprint:
        conditions.append((table.c.fingerprint == bindparam("fingerprint"))
                          & (table.c.received_at >= bindparam("since", type_=table.c.received_at.type)))
    return conditions


@functools.lru_cache(maxsize=8)
def insert_unless_repeated(into_journal: bool, by_key: bool, by_fingerprint: bool):
    """INSERT ... SELECT <the row> WHERE NOT EXISTS <an earlier copy>, built once per shape:
    into raw_events, or into the journal when there is one (an earlier copy may be in either)."""
    table = journal_table if into_journal else RawEvent.__table__
    columns = [table.c[name] for name in INTAKE_COLUMNS]
    row = select(*[bindparam(c.name, type_=c.type) for c in columns])
    for earlier in (journal_table, stored_table) if into_journal else (table,):
        conditions = repeats(earlier, by_key, by_fingerprint)
        if conditions:
            row = row.where(~exists().where(or_(*conditions)))
    # RETURNING tells whether the row went in (PostgreSQL reports no rowcount for INSERT ... SELECT)
    return insert(table).from_select([c.name for c in columns], row).returning(table.c.id)


def find_original(hub, values: dict, since) -> str:
    shape = (bool(values["delivery_key"]), bool(values["fingerprint"]))
    db, parameters = hub.db, {**values, "since": since}
    if db.journal is None:
        with db.read() as session:
            found = session.scalar(first_repeat(RawEvent.__table__, *shape), parameters)
    else:
        with db.journal.read() as connection:
            found = (connection.execute(first_repeat(journal_table, *shape), parameters).scalar()
                     or connection.execute(first_repeat(stored_table, *shape), parameters).scalar())
    if found is None:
        raise HubError(503, "could not store the delivery: retry later", headers={"Retry-After": "5"})
    return found


def first_repeat(table, by_key: bool, by_fingerprint: bool):
    conditions = repeats(table, by_key, by_fingerprint)
    return select(table.c.event_id).where(or_(*conditions)).order_by(table.c.id).limit(1)


def provider_reply(endpoint: Endpoint, parsed: Parsed | None) -> Response | None:
    reply = endpoint.module.reply(parsed)
    if reply is None:
        return None
    return Response(reply.body, status=reply.status, content_type=reply.content_type)


def answer(endpoint: Endpoint, parsed: list[Parsed], event_id: str, duplicate: bool) -> Response:
    own = provider_reply(endpoint, parsed[0] if parsed else None)
    if own is not None:
        return own
    target = endpoint.settings.get("redirect")
    if target and browser_post(endpoint.request):
        return redirect(target, code=303)
    # what jsonify writes, without its machinery
    status = "duplicate" if duplicate else "accepted"
    return Response(f'{{"event_id":{json.dumps(event_id)},"status":"{status}"}}\n', 200 if duplicate else 202,
                    mimetype="application/json")


def browser_post(request: Request) -> bool:
    """A plain HTML form submit (not fetch/XHR) wants a page, not JSON."""
    prefers_html = request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"
    return prefers_html and request.headers.get("X-Requested-With") != "XMLHttpRequest"


def with_cors(endpoint: Endpoint, response: Response) -> Response:
    request = endpoint.request
    origin = request.headers.get("Origin")
    allowed = endpoint.settings.get("cors_origins") or []
    if origin and (origin in allowed or "*" in allowed):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        response.headers["Access-Control-Expose-Headers"] = "X-Hub-Event-Id"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, X-Hub-Secret"
            response.headers["Access-Control-Max-Age"] = "600"
    return response
