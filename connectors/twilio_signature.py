"""Twilio's webhook requests, shared by the voice and the messaging modules: the parameters
and the ``X-Twilio-Signature`` over them.

base64(HMAC-SHA1(auth token, URL + every POST parameter name and value, sorted)). Twilio's
own SDK accepts the signature computed with and without the default port, so we do too.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from connectors.base import Forbidden, Inbound, Unauthorized, UnsupportedMediaType


def request_params(inbound: Inbound) -> list[tuple[str, str]]:
    """The parameters in order, repeated names kept (all of them are signed): the form body
    of a POST, the query of a GET."""
    if inbound.method.upper() != "POST":
        return list(inbound.query)
    media_type = inbound.content_type.split(";")[0].strip().lower()
    if media_type not in ("application/x-www-form-urlencoded", ""):
        raise UnsupportedMediaType(f"unsupported content type {inbound.content_type!r}",
                                   {"content-type": "Twilio posts application/x-www-form-urlencoded"})
    return parse_qsl(inbound.body.decode("utf-8", "replace"), keep_blank_values=True)


def compute(url: str, params: list[tuple[str, str]], token: str) -> str:
    payload = url
    names = sorted({name for name, _ in params})
    for name in names:
        for value in sorted({v for n, v in params if n == name}):
            payload += name + value
    digest = hmac.new(token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> list[str]:
    """The URL as given, plus with the default port added or removed."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if parts.port is None and default:
        other = parts._replace(netloc=f"{parts.netloc}:{default}")
    elif parts.port == default:
        other = parts._replace(netloc=parts.netloc.rsplit(":", 1)[0])
    else:
        return [url]
    return [url, urlunsplit(other)] if host else [url]


def verify(url: str, params: list[tuple[str, str]], signature: str | None, token: str | None) -> None:
    if not token:
        raise Unauthorized("the Twilio auth token is not configured", {"X-Twilio-Signature": "no token"})
    if not signature:
        raise Unauthorized("missing X-Twilio-Signature", {"X-Twilio-Signature": "missing"})
    for candidate in url_variants(url):
        if hmac.compare_digest(compute(candidate, params, token).encode(), signature.encode("utf-8", "replace")):
            return
    raise Forbidden("X-Twilio-Signature does not match", {"X-Twilio-Signature": "invalid"})
