"""The connector test harness: ``inbound`` builds the delivery a fixture file holds, as its
provider sends it, signed with the provider's reference signer (tests/connectors/signers.py).

A fixture file ``tests/fixtures/<kind>/<provider>/<event>__<variant>[.<charset>].<ext>`` holds
the raw body, or for ``.query`` the query string of a GET; its extension gives the
Content-Type (a multipart body's boundary is read from its first line). A test module names
what its deliveries share (their ``folder`` below tests/fixtures, the ``url``, the signing
``key``) by overriding ``delivery_defaults``; a test alters a built delivery with
``dataclasses.replace``."""
from __future__ import annotations

import functools
import hashlib
from urllib.parse import parse_qsl

import pytest

from connectors.base import Inbound

from tests.connectors import signers
from tests.helpers import FIXTURES

MEDIA_TYPES = {"urlencoded": "application/x-www-form-urlencoded", "multipart": "multipart/form-data",
               "json": "application/json", "xml": "application/xml", "eml": "message/rfc822"}
URL_KINDS = {"webforms": "forms"}  # fixture folders whose URL segment differs
MAILBOX_URL = "imap://127.0.0.1/INBOX;UID=1"


@pytest.fixture
def delivery_defaults() -> dict:
    """What every delivery of a test module shares; a module overrides this fixture."""
    return {}


@pytest.fixture
def inbound(delivery_defaults):
    """``inbound(name, **overrides)``: the delivery fixture file ``name`` holds (see ``delivery``)."""
    return functools.partial(delivery, **delivery_defaults)


def delivery(name: str, folder: str, url: str | None = None, key: str | None = None, digest=hashlib.sha1,
             remote_addr: str | None = None, charset: str | None = None, **headers: str) -> Inbound:
    """The file ``folder/name`` below tests/fixtures as it reaches ``url`` (by default the
    provider's hook), signed with ``key`` when there is one, its Content-Type naming a
    ``charset`` when the name does not, with extra ``headers`` (``x_hub_secret=`` for X-Hub-Secret)."""
    raw = (FIXTURES / folder / name).read_bytes()
    _, *named, extension = name.split(".")
    charset = named or ([charset] if charset else [])
    url = url or default_url(folder, name)
    headers = {field.replace("_", "-"): value for field, value in headers.items()}
    if extension == "query":
        query = raw.decode("ascii").strip()
        return Inbound(method="GET", url=f"{url}?{query}", query=tuple(parse_qsl(query)), headers=headers,
                       remote_addr=remote_addr)
    headers["content-type"] = content_type(extension, charset, raw)
    if key:
        url, signature = signed(folder, url, raw, extension, key, digest)
        headers.update(signature)
    return Inbound(method="IMAP" if extension == "eml" else "POST", url=url, subpath=subpath(folder, name),
                   headers=headers, body=raw, remote_addr=remote_addr)


def default_url(folder: str, name: str) -> str:
    if name.endswith(".eml"):
        return MAILBOX_URL
    kind, provider = folder.split("/")
    path = "/".join(part for part in (URL_KINDS.get(kind, kind), provider, subpath(folder, name)) if part)
    return f"https://hub.example.com/hooks/{path}"


def subpath(folder: str, name: str) -> str:
    """MANGO OFFICE posts each event to its own path below the hook: the fixture's event part
    with ``/`` for ``_`` (``events_call__connected`` to ``events/call``)."""
    return name.split("__")[0].replace("_", "/") if folder == "telephony/mango" else ""


def content_type(extension: str, charset: list[str], body: bytes) -> str:
    media_type = MEDIA_TYPES[extension]
    if extension == "multipart":
        media_type += "; boundary=" + body.split(b"\r\n", 1)[0][2:].decode()
    return media_type + "".join(f"; charset={name}" for name in charset)


def signed(folder: str, url: str, body: bytes, extension: str, key: str, digest) -> tuple[str, dict[str, str]]:
    """The URL the provider calls and the header that signs the delivery: Zadarma's
    ``Signature``, or Twilio's ``X-Twilio-Signature`` (over the URL alone for a JSON body, whose
    hash the URL then carries in ``bodySHA256``). Other providers sign inside the body."""
    provider = folder.split("/")[-1]
    if provider == "zadarma":
        return url, {"signature": signers.zadarma(body, key)}
    if provider != "twilio":
        raise ValueError(f"{folder}: the fixture files carry their own signature")
    if extension == "json":
        url = f"{url}{'&' if '?' in url else '?'}bodySHA256={hashlib.sha256(body).hexdigest()}"
        body = b""
    return url, {"x-twilio-signature": signers.twilio(url, body, key, digest)}
