"""Each provider module declares the event types it knows: every fixture of the provider parses
into events whose type the module HANDLES or IGNORES, so an event type a module meets but never
declared fails here; the fixtures that are malformed on purpose are refused, naming the field."""
from __future__ import annotations

import pytest

from connectors.base import ConnectorError
from hub import registry

from tests.helpers import FIXTURES

REFUSED = {
    "telephony/mango/events_call__invalid_json.urlencoded",
    "telephony/mango/events_summary__missing_entry_id.urlencoded",
    "telephony/twilio/status_completed__missing_call_sid.urlencoded",
    "telephony/zadarma/notify_end__missing_pbx_call_id.urlencoded", "telephony/zadarma/echo__hostile.query",
    "sms/twilio/message__missing_message_sid.urlencoded",
    "webforms/generic/submission__malformed.json", "webforms/generic/submission__not_an_object.json",
    "webforms/generic/submission__xml_body.xml", "mail/broken__mime_no_boundary.eml",
}


def fixture_folder(module) -> str:
    """tests/fixtures/<kind>/<provider>/, or the kind's own folder when one provider has it all (mail)."""
    folder = module.MAPPING
    return folder if (FIXTURES / folder).is_dir() else folder.split("/")[0]


MODULES = {f"{fixture_folder(module)}/{path.name}": module  # fixture file -> its provider's module
           for module in registry.INTAKE.values() for path in (FIXTURES / fixture_folder(module)).iterdir()}


def delivery(inbound, path: str):
    folder, name = path.rsplit("/", 1)
    return inbound(name, folder=folder)


@pytest.mark.parametrize("path", sorted(MODULES.keys() - REFUSED))
def test_every_fixture_parses_into_declared_event_types(inbound, path):
    module = MODULES[path]
    events = module.parse(delivery(inbound, path), {})
    assert events and {event.event_type for event in events} <= set(module.HANDLES) | set(module.IGNORES)


@pytest.mark.parametrize("path", sorted(REFUSED))
def test_a_malformed_fixture_is_refused_naming_the_field(inbound, path):
    with pytest.raises(ConnectorError) as refused:
        MODULES[path].parse(delivery(inbound, path), {})
    assert refused.value.fields
