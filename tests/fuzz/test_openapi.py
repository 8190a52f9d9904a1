"""The OpenAPI document: it matches the app's routes both ways, and Schemathesis, driving every
documented operation from it, gets no 5xx and only responses the document describes."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.exceptions import MethodNotAllowed, NotFound

from hub.web import receive

from tests.fuzz.tally import tried
from tests.helpers import API_TOKEN

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SAMPLE = {"key": "landing", "number": "1", "task_id": "1", "event_id": "e", "subpath": "events/call"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.fixture
def every_provider(config_document, monkeypatch):
    for name in ("TWILIO_AUTH_TOKEN", "ZADARMA_SECRET", "MANGO_API_KEY", "MANGO_API_SALT", "SMSRU_API_ID"):
        monkeypatch.setenv(name, f"test-{name.lower()}")
    config_document["telephony"] = {"twilio": {"auth_token_env": "TWILIO_AUTH_TOKEN"},
                                    "zadarma": {"secret_env": "ZADARMA_SECRET"},
                                    "mango": {"api_key_env": "MANGO_API_KEY", "api_salt_env": "MANGO_API_SALT"}}
    config_document["sms"]["inbound"] = {"twilio": {"auth_token_env": "TWILIO_AUTH_TOKEN"},
                                         "smsru": {"api_id_env": "SMSRU_API_ID"}}
    config_document["limits"] = {"requests_per_minute": 1_000_000}


@pytest.fixture
def document(every_provider, client):
    response = client.get("/api/openapi.json", headers=AUTH)
    assert response.status_code == 200
    return response.get_json()


def operations(document: dict) -> list[tuple[str, str]]:
    return [(path, method.upper()) for path, item in document["paths"].items() for method in item]


def concrete(path: str) -> str:
    for name, value in SAMPLE.items():
        path = path.replace("{" + name + "}", value)
    return path


def served(app, path: str, method: str) -> bool:
    """Whether the app routes ``method path``: the intake's own routing for /hooks, Flask's otherwise."""
    route = receive.hook_route(path)
    if route is not None:
        endpoint = receive.resolve(app.extensions["hub"], None, route[0], route[1])
        extra = ("OPTIONS",) if endpoint.kind == "forms" else ()
        return method in receive.allowed_methods(endpoint) + extra
    try:
        app.url_map.bind("hub.test").match(path, method=method)
    except (NotFound, MethodNotAllowed):
        return False
    return True


def test_every_documented_operation_has_a_route(document, app):
    missing = [f"{method} {path}" for path, method in operations(document) if not served(app, concrete(path), method)]
    assert document["openapi"] == "3.1.0" and missing == []


def test_paths_outside_the_intake_are_not_taken_for_it(app):
    assert receive.hook_route("/hooks/forms") is None and receive.hook_route("/hooks/forms/landing/") is None
    assert receive.hook_route("/api/leads") is None and not served(app, "/hooks/forms", "POST")
    assert receive.hook_route("/hooks/telephony/zadarma/events/call") == ("telephony", "zadarma", "events/call")
    assert receive.hook_route("/hooks/forms/" + "форма".encode().decode("latin-1")) == (
        "forms", "форма", "")  # WSGI hands the path's UTF-8 bytes as latin-1
    assert receive.hook_route("/hooks/forms/\u0444") == ("forms", "?", "")  # a server that broke that rule


def test_every_api_route_is_documented(document, app):
    adapter = app.url_map.bind("hub.test")
    documented = {(adapter.match(concrete(path), method=method)[0], method) for path, method in operations(document)
                  if not path.startswith("/hooks/")}
    routes = {(rule.endpoint, method) for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes and routes <= documented


def test_intake_documents_the_methods_each_provider_uses(document):
    methods = {path: sorted(item) for path, item in document["paths"].items() if path.startswith("/hooks/")}
    assert methods == {
        "/hooks/forms/{key}": ["options", "post"],
        "/hooks/telephony/twilio": ["get", "post"], "/hooks/telephony/twilio/{subpath}": ["get", "post"],
        "/hooks/telephony/zadarma": ["get", "post"], "/hooks/telephony/zadarma/{subpath}": ["get", "post"],
        "/hooks/telephony/mango": ["post"], "/hooks/telephony/mango/{subpath}": ["post"],
        "/hooks/sms/twilio": ["get", "post"], "/hooks/sms/twilio/{subpath}": ["get", "post"],
        "/hooks/sms/smsru": ["post"], "/hooks/sms/smsru/{subpath}": ["post"]}


def test_the_document_needs_the_token(client):
    assert client.get("/api/openapi.json").status_code == 401


@pytest.fixture
def api_schema(every_provider, app):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app, headers=AUTH)


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(api_schema):
    """Every documented operation, with valid and with invalid data, a share of the examples each."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 10
    for operation in operations:
        cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                          operation.as_strategy(GenerationMode.NEGATIVE))

        @settings(max_examples=max(5, settings.default.max_examples // 10))
        @given(case=cases)
        def call(case):
            response = case.call(headers=AUTH)
            tried(response.status_code)
            case.validate_response(response, checks=CHECKS)

        call()
