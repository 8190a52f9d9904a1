"""Mail as the IMAP module reads it: ``parse`` reads a message of tests/fixtures/mail."""
from __future__ import annotations

import pytest

from connectors.mail import imap

from tests.helpers import MAILBOX_SETTINGS


@pytest.fixture
def delivery_defaults():
    return {"folder": "mail"}


@pytest.fixture
def parse(inbound):
    def parsed_message(name: str) -> imap.Parsed:
        [parsed] = imap.parse(inbound(name), MAILBOX_SETTINGS)
        return parsed

    return parsed_message
