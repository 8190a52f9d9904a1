"""What every web form shares: body decoding, the optional shared secret, the honeypot.

A form body becomes a flat ``dict[str, str]``:

* ``application/x-www-form-urlencoded`` — decoded in the ``charset=`` of the content type
  (default UTF-8); undecodable bytes become U+FFFD. A charset Python does not know, or one
  that is no text charset of the web (``idna``, ``unicode_escape``), is read as UTF-8.
* ``multipart/form-data`` — text parts decoded the same way; a file part is not kept, only
  described: ``{"cv": "cv.pdf (application/pdf, 5120 bytes)"}`` (an empty file input gives ``""``).
  A part without a name is no form field and is left out.
* ``application/json`` — an object, at most ``MAX_JSON_DEPTH`` levels deep; nested objects
  flattened with dots (``utm.source``), lists of scalars joined with ``", "``, other lists
  indexed (``items.0.sku``); ``true``/``false`` as ``"true"``/``"false"``, ``null`` as ``""``.

Repeated names (checkboxes) are joined with ``", "``. NUL characters are removed and lone
surrogates (``"\\ud800"`` in JSON) become U+FFFD; every other character is kept as sent.
"""
from __future__ import annotations

import hmac
import io
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import FileStorage
from werkzeug.formparser import MultiPartParser
from werkzeug.http import parse_options_header

from connectors.base import (
    BadRequest,
    Forbidden,
    Inbound,
    Parsed,
    Unauthorized,
    UnsupportedMediaType,
    clean_text,
    read_json,
    text_codec,
)

SECRET_HEADER = "X-Hub-Secret"
SECRET_FIELD = "_secret"
DEFAULT_HONEYPOT = "website"
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON = "application/json"


def read_fields(inbound: Inbound) -> dict[str, str]:
    """The form's fields as flat strings, whatever the supported content type."""
    media_type, options = parse_options_header(inbound.content_type)
    media_type = media_type.lower()
    charset = text_codec(options.get("charset"))
    if media_type == URLENCODED:
        pairs = _urlencoded_pairs(inbound.body, charset or "utf-8")
    elif media_type == MULTIPART:
        pairs = _multipart_pairs(inbound.body, options.get("boundary"), charset or "utf-8")
    elif media_type == JSON or media_type.endswith("+json"):
        pairs = _json_pairs(inbound.body, charset or "utf-8")
    elif not media_type and not inbound.body:
        pairs = []
    else:
        raise UnsupportedMediaType(
            f"unsupported content type {inbound.content_type!r}",
            fields={"content-type": f"send {URLENCODED}, {MULTIPART} or {JSON}"},
        )
    return join_repeated(pairs)


def decode_text(body: bytes, charset: str) -> str:
    """``body`` in ``charset``, undecodable bytes as U+FFFD (UTF-8 should the codec refuse)."""
    try:
        return body.decode(charset, "replace")
    except (UnicodeError, LookupError):
        return body.decode("utf-8", "replace")


def join_repeated(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """One value per name: repeated names (checkbox groups) joined with ``", "``."""
    fields: dict[str, str] = {}
    for name, value in pairs:
        name, value = clean_text(name), clean_text(value)
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    return fields


def _urlencoded_pairs(body: bytes, charset: str) -> list[tuple[str, str]]:
    text = decode_text(body, charset)
    return parse_qsl(text, keep_blank_values=True, encoding=charset, errors="replace")


class _CharsetMultiPartParser(MultiPartParser):
    """Decodes text parts in the body's charset (werkzeug assumes UTF-8 for legacy ones)."""

    def __init__(self, charset: str):
        super().__init__()
        self.charset = charset

    def get_part_charset(self, headers: Any) -> str:
        declared = parse_options_header(headers.get("content-type", ""))[1].get("charset")
        return text_codec(declared) or self.charset


def _multipart_pairs(body: bytes, boundary: str | None, charset: str) -> list[tuple[str, str]]:
    if not boundary:
        raise BadRequest("multipart body without a boundary",
                         fields={"content-type": "needs a boundary parameter"})
    parser = _CharsetMultiPartParser(charset)
    try:
        texts, files = parser.parse(io.BytesIO(body), boundary.encode("latin-1", "replace"), len(body))
    except ValueError as exc:
        raise BadRequest("malformed multipart body",
                         fields={"body": f"not multipart/form-data with boundary {boundary!r}"}) from exc
    described = [(name, describe_file(storage)) for name, storage in files.items(multi=True)]
    return [(name, value) for name, value in list(texts.items(multi=True)) + described if name is not None]


def describe_file(storage: FileStorage) -> str:
    """``"name.pdf (application/pdf, 5120 bytes)"``; the file itself is not kept."""
    size = storage.stream.seek(0, io.SEEK_END)
    storage.close()
    if not storage.filename and not size:
        return ""
    content_type = storage.content_type or "application/octet-stream"
    return f"{storage.filename} ({content_type}, {size} bytes)"


def _json_pairs(body: bytes, charset: str) -> list[tuple[str, str]]:
    try:
        document = read_json(decode_text(body, charset).lstrip("\ufeff"))
    except ValueError as exc:
        raise BadRequest("malformed JSON body", fields={"body": f"not JSON: {exc}"}) from exc
    if not isinstance(document, dict):
        raise BadRequest("the JSON body must be an object",
                         fields={"body": f"expected an object, got {type(document).__name__}"})
    return flatten(document)


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``{"utm": {"source": "x"}}`` → ``[("utm.source", "x")]``; see the module docstring."""
    if isinstance(value, dict):
        return [pair for key, item in value.items() for pair in flatten(item, _join_key(prefix, key))]
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        return [pair for index, item in enumerate(value)
                for pair in flatten(item, _join_key(prefix, index))]
    if isinstance(value, list):
        return [(prefix, ", ".join(text for text in map(_scalar, value) if text))]
    return [(prefix, _scalar(value))]


def _join_key(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def verify(inbound: Inbound, settings: Mapping[str, Any]) -> None:
    """The form's optional shared secret; forms carry no provider signature."""
    expected = settings.get("secret")
    if expected:
        check_secret(inbound, None, expected)


def check_secret(inbound: Inbound, fields: Mapping[str, str] | None, expected: str) -> None:
    """Header ``X-Hub-Secret`` (preferred) or field ``_secret`` must equal ``expected``.

    ``fields`` may be the already-read fields; with ``None`` the body is read only when the
    header is absent. Raises ``Unauthorized`` when no secret is sent, ``Forbidden`` when wrong.
    """
    given = inbound.header(SECRET_HEADER)
    if not given:
        given = (read_fields(inbound) if fields is None else fields).get(SECRET_FIELD)
    if not given:
        hint = f"send the {SECRET_HEADER} header or a {SECRET_FIELD} field"
        raise Unauthorized("missing form secret", fields={SECRET_FIELD: hint})
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise Forbidden("wrong form secret", fields={SECRET_FIELD: "does not match"})


def submission(inbound: Inbound, settings: Mapping[str, Any], fields: Mapping[str, str],
               delivery_key: str | None = None) -> Parsed:
    """The neutral ``submission`` event, with request context added and service fields removed."""
    fields = dict(fields)
    fields.pop(SECRET_FIELD, None)
    _add_request_context(fields, inbound)
    trap = honeypot_field(settings)
    caught = bool(trap and fields.pop(trap, "").strip())
    return Parsed(event_type="submission", fields=fields,
                  delivery_key=(delivery_key or "").strip() or None,
                  ignore="honeypot" if caught else None)


def honeypot_field(settings: Mapping[str, Any]) -> str | None:
    """The configured honeypot field name; an explicit ``None`` switches the trap off."""
    return settings.get("honeypot", DEFAULT_HONEYPOT)


def _add_request_context(fields: dict[str, str], inbound: Inbound) -> None:
    # A field the form sent itself wins over the header of the same name.
    for field_name, header in (("http_referer", "referer"), ("http_origin", "origin")):
        value = inbound.header(header)
        if value:
            fields.setdefault(field_name, value)


def fill_blanks(fields: dict[str, str], values: Mapping[str, str]) -> None:
    """Adds ``values`` where ``fields`` has no such field or only a blank one."""
    for name, value in values.items():
        if not fields.get(name, "").strip():
            fields[name] = value


def first_value(fields: Mapping[str, str], names: Iterable[str]) -> str | None:
    """The first non-blank value among ``names``."""
    return next((fields[name].strip() for name in names if fields.get(name, "").strip()), None)
