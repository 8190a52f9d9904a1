"""Any site form posting urlencoded, multipart or JSON to ``/hooks/forms/<key>``."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Inbound, Parsed, Reply
from connectors.webforms import common

NAME = "generic"
KIND = "forms"
CHANNEL = "form"
MAPPING = "webforms/generic"
SECRETS = ("secret_env",)
HANDLES = ("submission",)
IGNORES = ()

SUBMISSION_ID_FIELDS = ("submission_id", "_submission_id")


def verify(inbound: Inbound, settings: Mapping[str, Any]) -> None:
    common.verify(inbound, settings)


def parse(inbound: Inbound, settings: Mapping[str, Any]) -> list[Parsed]:
    fields = common.read_fields(inbound)
    key = common.first_value(fields, SUBMISSION_ID_FIELDS)
    return [common.submission(inbound, settings, fields, delivery_key=key)]


def reply(parsed: Parsed) -> Reply | None:
    return None
