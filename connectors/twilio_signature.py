"""Twilio's webhook requests, shared by the voice and the messaging modules: the parameters
and the ``X-Twilio-Signature`` over them, checked the way twilio-python's RequestValidator
checks it.

* A form POST is signed over the URL followed by every parameter name and value, sorted.
* A JSON POST carries ``bodySHA256=<hex SHA-256 of the body>`` in its URL; the URL alone is
  signed, and the body must match the hash.
* A GET is signed over the URL alone (its parameters are in it).

The signature is base64(HMAC-SHA1(auth token, ...)), unless a Webhook Setting signs the request
with its SharedKey: then ``X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=<name>``
names the algorithm (``HMAC_SHA1`` or ``HMAC_SHA256``) and the key is the SharedKey secret,
configured as ``shared_key_env``. Twilio's SDK accepts the URL with and without its port, so
we do too.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

from connectors.base import Forbidden, Inbound, Unauthorized, UnsupportedMediaType
from connectors.webforms import common

SIGNATURE_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
BODY_HASH = "bodySHA256"
ALGORITHMS = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}


def request_params(inbound: Inbound) -> list[tuple[str, str]]:
    """The parameters in order, repeated names kept: the body of a POST (a JSON object's
    fields flattened with dots), the query of a GET."""
    if inbound.method.upper() != "POST":
        return list(inbound.query)
    if is_json(inbound):
        return list(common.read_fields(inbound).items())
    return parse_qsl(inbound.body.decode("utf-8", "replace"), keep_blank_values=True)


def is_json(inbound: Inbound) -> bool:
    media_type = inbound.content_type.split(";")[0].strip().lower()
    if media_type in (common.URLENCODED, ""):
        return False
    if media_type == common.JSON:
        return True
    raise UnsupportedMediaType(f"unsupported content type {inbound.content_type!r}",
                               {"content-type": f"Twilio posts {common.URLENCODED} or {common.JSON}"})


def verify_request(inbound: Inbound, settings: Mapping[str, Any]) -> None:
    """Raises ``Unauthorized`` / ``Forbidden`` unless Twilio signed this request."""
    key, algorithm = signing_key(inbound.header(SETTINGS_HEADER), settings)
    signature = inbound.header(SIGNATURE_HEADER)
    if not signature:  # before the body hash: the plainer answer
        raise Unauthorized("missing X-Twilio-Signature", {SIGNATURE_HEADER: "missing"})
    verify(inbound.url, signed_params(inbound), signature, key, algorithm)


def signing_key(settings_header: str | None, settings: Mapping[str, Any]) -> tuple[str, str]:
    """(key, algorithm): the auth token and HMAC-SHA1, or a Webhook Setting's SharedKey."""
    if settings_header:
        key, algorithm = settings.get("shared_key"), header_algorithm(settings_header)
        name = "the Twilio webhook shared key (shared_key_env)"
    else:
        key, algorithm, name = settings.get("auth_token"), "HMAC_SHA1", "the Twilio auth token"
    if algorithm not in ALGORITHMS:
        raise Forbidden(f"unsupported signature algorithm {algorithm!r}",
                        {SETTINGS_HEADER: f"algorithm is not one of {', '.join(ALGORITHMS)}"})
    if not key:
        raise Unauthorized(f"{name} is not configured", {SIGNATURE_HEADER: "no key configured"})
    return key, algorithm


def header_algorithm(settings_header: str) -> str:
    """``key=webhooks_sharedkey_…,algorithm=HMAC_SHA256`` → ``HMAC_SHA256`` (default HMAC_SHA1)."""
    for part in settings_header.split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return "HMAC_SHA1"


def signed_params(inbound: Inbound) -> list[tuple[str, str]]:
    """What the signature covers after the URL: a form POST's parameters; nothing for a GET
    (they are in the URL) or a JSON POST (its body hash is in the URL, checked here)."""
    if inbound.method.upper() != "POST":
        return []
    if not is_json(inbound):
        return request_params(inbound)
    check_body_hash(inbound)
    return []


def check_body_hash(inbound: Inbound) -> None:
    given = parse_qs(urlsplit(inbound.url).query).get(BODY_HASH)
    if not given:
        raise Unauthorized("a JSON webhook needs bodySHA256 in its URL", {BODY_HASH: "missing"})
    if not same(hashlib.sha256(inbound.body).hexdigest(), given[0]):
        raise Forbidden("the body does not match bodySHA256", {BODY_HASH: "does not match the body"})


def compute(url: str, params: list[tuple[str, str]], key: str, algorithm: str = "HMAC_SHA1") -> str:
    payload = url
    for name in sorted({name for name, _ in params}):
        for value in sorted({v for n, v in params if n == name}):
            payload += name + value
    digest = hmac.new(key.encode("utf-8"), payload.encode("utf-8"), ALGORITHMS[algorithm]).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> list[str]:
    """The URL without its port and with one (the default port when it names none)."""
    parts = urlsplit(url)
    try:
        given_port = parts.port
    except ValueError:  # not a number: the URL can only be taken as it is
        return [url]
    host = parts.netloc.rsplit(":", 1)[0] if given_port else parts.netloc
    port = given_port or {"https": 443, "http": 80}.get(parts.scheme)
    if not host or not port:
        return [url]
    return [urlunsplit(parts._replace(netloc=host)), urlunsplit(parts._replace(netloc=f"{host}:{port}"))]


def verify(url: str, params: list[tuple[str, str]], signature: str | None, key: str,
           algorithm: str = "HMAC_SHA1") -> None:
    if not signature:
        raise Unauthorized("missing X-Twilio-Signature", {SIGNATURE_HEADER: "missing"})
    for candidate in url_variants(url):
        if same(compute(candidate, params, key, algorithm), signature):
            return
    raise Forbidden("X-Twilio-Signature does not match", {SIGNATURE_HEADER: "invalid"})


def same(expected: str, given: str) -> bool:
    """Constant-time equality that also takes the non-ASCII text a forged header may carry."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))
