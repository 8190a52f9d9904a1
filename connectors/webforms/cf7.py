"""WordPress Contact Form 7, as the plugin itself submits a form (multipart/form-data).

CF7's hidden ``_wpcf7*`` fields (form id, version, locale, unit tag, container post, posted
data hash) describe the plugin, not the visitor, and are dropped. The posted data hash is a
hash of the content, so two people sending the same text share it: it is no delivery id.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Inbound, Parsed, Reply
from connectors.webforms import common

NAME = "cf7"
KIND = "forms"
CHANNEL = "form"
MAPPING = "webforms/cf7"
SECRETS = ("secret_env",)
HANDLES = ("submission",)
IGNORES = ()

SERVICE_PREFIX = "_wpcf7"


def verify(inbound: Inbound, settings: Mapping[str, Any]) -> None:
    common.verify(inbound, settings)


def parse(inbound: Inbound, settings: Mapping[str, Any]) -> list[Parsed]:
    fields = without_service_fields(common.read_fields(inbound))
    return [common.submission(inbound, settings, fields)]


def without_service_fields(fields: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in fields.items() if not name.startswith(SERVICE_PREFIX)}


def reply(parsed: Parsed) -> Reply | None:
    return None
