"""Tilda's "Webhook" form data receiver (urlencoded UTF-8; optional ``COOKIES`` field).

Saving the webhook in Tilda posts ``test=test`` and expects 200; every submission carries a
``tranid`` that Tilda repeats on its retries, so it is the delivery key.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, unquote_plus

from connectors.base import Inbound, Parsed, Reply
from connectors.webforms import common

NAME = "tilda"
KIND = "forms"
CHANNEL = "form"
MAPPING = "webforms/tilda"
SECRETS = ("secret_env",)
HANDLES = ("submission",)
IGNORES = ("test",)

COOKIES_FIELD = "COOKIES"
UTM_COOKIE = "TILDAUTM"
KEPT_COOKIES = ("_ym_uid", "_ga")
AMP_ARTEFACT = re.compile(r"^(?:amp;)+")


def verify(inbound: Inbound, settings: Mapping[str, Any]) -> None:
    # Tilda's connection check cannot carry the secret (no header, no hidden field), and
    # answering it reveals nothing, so it passes unchecked.
    if not settings.get("secret"):
        return
    fields = common.read_fields(inbound)
    if not is_connection_check(fields):
        common.check_secret(inbound, fields, settings["secret"])


def parse(inbound: Inbound, settings: Mapping[str, Any]) -> list[Parsed]:
    fields = common.read_fields(inbound)
    if is_connection_check(fields):
        return [Parsed(event_type="test", fields=fields, handshake=True)]
    fields = unpack_cookies(fields)
    return [common.submission(inbound, settings, fields, delivery_key=fields.get("tranid"))]


def reply(parsed: Parsed) -> Reply | None:
    return Reply(200, "ok") if parsed.handshake else None


def is_connection_check(fields: Mapping[str, str]) -> bool:
    return fields.get("test") == "test" and not fields.get("tranid")


def unpack_cookies(fields: Mapping[str, str]) -> dict[str, str]:
    """UTM tags from ``TILDAUTM`` and the analytics ids; the cookie string itself is dropped.

    Fields the form sent (hidden ``utm_*`` inputs) win over the cookie's values.
    """
    fields = dict(fields)
    cookies = parse_cookie_string(fields.pop(COOKIES_FIELD, ""))
    common.fill_blanks(fields, parse_tildautm(cookies.get(UTM_COOKIE, "")))
    common.fill_blanks(fields, {name: cookies[name] for name in KEPT_COOKIES if name in cookies})
    return fields


def parse_cookie_string(raw: str) -> dict[str, str]:
    """``"k=v; k2=v2"`` → ``{"k": "v", "k2": "v2"}``; the first of a repeated name wins."""
    cookies: dict[str, str] = {}
    for part in raw.split(";"):
        name, sep, value = part.strip().partition("=")
        if name and sep:
            cookies.setdefault(name.strip(), value.strip())
    return cookies


def parse_tildautm(raw: str) -> dict[str, str]:
    """``utm_source%3Dvk%7C%7C%7C...`` → ``{"utm_source": "vk", ...}``.

    Tilda's script stores the page's raw query pairs (still percent-encoded) joined by
    ``|||`` and URL-encodes the whole, so values are decoded a second time. Links with
    ``&amp;`` in them leave ``amp;`` in front of a name.
    """
    tags: dict[str, str] = {}
    for segment in unquote(raw).split("|||"):
        name, sep, value = AMP_ARTEFACT.sub("", segment.strip()).partition("=")
        if sep and name.startswith("utm_"):
            tags.setdefault(name, unquote_plus(value).strip())
    return tags
