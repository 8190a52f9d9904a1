"""Reading one RFC 5322 message with the standard ``email`` package, leniently.

The ``compat32`` policy is used on purpose: it is several times faster than ``policy.default``
and never decodes behind our back, so every charset decision is made here, in one place:
the declared charset, then UTF-8, then windows-1251 (common in Russian mail); nothing here
raises on bad charsets. Only a MIME structure that cannot be split into its parts is refused
(``check_structure``), so the raw message stays stored and the pipeline marks that one event
failed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import errors
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from connectors.base import BadRequest, text_codec

FALLBACK_CHARSETS = ("utf-8", "windows-1251")
CHARSET_ALIASES = {"x-cp1251": "windows-1251", "win-1251": "windows-1251",
                   "unknown-8bit": "utf-8", "x-unknown": "utf-8"}
FATAL_DEFECTS = (errors.NoBoundaryInMultipartDefect, errors.StartBoundaryNotFoundDefect,
                 errors.MultipartInvariantViolationDefect)
MESSAGE_ID_RE = re.compile(r"<([^<>]+)>")
EARLIEST_DATE = datetime(1990, 1, 1, tzinfo=UTC)


def read_message(raw: bytes) -> Message:
    return BytesParser(policy=compat32).parsebytes(raw)


def check_structure(message: Message) -> None:
    """Refuse a message whose MIME parts cannot be told apart (the body would be garbage)."""
    if not message.keys():
        raise BadRequest("not a mail message: no header fields", {"body": "no header"})
    for part in message.walk():
        for defect in part.defects:
            if isinstance(defect, FATAL_DEFECTS):
                raise BadRequest(f"unparseable MIME: {type(defect).__name__} in {part.get_content_type()}",
                                 {"body": "broken MIME structure"})


def codec(charset: str | None) -> str | None:
    """A usable text codec for a declared charset (``utf8`` and friends included), or None."""
    if not charset:
        return None
    name = charset.strip().strip('"').lower()
    return text_codec(CHARSET_ALIASES.get(name, name))


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Declared charset, then UTF-8, then windows-1251; never raises."""
    for charset in (codec(declared), *FALLBACK_CHARSETS):
        if charset:
            try:
                return data.decode(charset)
            except UnicodeError:  # idna raises its own kind
                continue
    return data.decode("utf-8", "replace")


def header_text(value) -> str:
    """An unfolded header value with RFC 2047 words (and raw 8-bit bytes) decoded."""
    if value is None:
        return ""
    try:
        chunks = decode_header(value)
    except (errors.HeaderParseError, ValueError):
        chunks = [(str(value), None)]
    text = "".join(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk
                   for chunk, charset in chunks)
    return " ".join(text.split())


def header(message: Message, name: str) -> str:
    return header_text(message.get(name))


def addresses(message: Message, *names: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of the named headers, names decoded."""
    values = [header_text(value) if not isinstance(value, str) else value
              for name in names for value in message.get_all(name, [])]
    return [(header_text(display), address.strip())
            for display, address in getaddresses(values) if "@" in address]


def first_address(message: Message, name: str) -> tuple[str, str]:
    found = addresses(message, name)
    return found[0] if found else ("", "")


def normalise_message_id(value) -> str | None:
    """``<abc@host>`` → ``abc@host``; the first bracketed id wins, else the bare value."""
    text = str(value or "").strip()
    match = MESSAGE_ID_RE.search(text)
    found = "".join((match.group(1) if match else text).split())
    return found or None


def thread_ids(message: Message) -> list[str]:
    """Message-IDs from In-Reply-To, then References, without brackets, each once."""
    found: list[str] = []
    for name in ("In-Reply-To", "References"):
        text = str(message.get(name) or "")
        ids = MESSAGE_ID_RE.findall(text) or text.split()
        for item in ("".join(i.split()) for i in ids):
            if item and item not in found:
                found.append(item)
    return found


def message_date(message: Message, internaldate: str | None) -> str | None:
    """RFC 5322 Date as ISO 8601; INTERNALDATE when missing, unparseable or absurd."""
    fallback = parse_iso(internaldate)
    try:
        moment = parsedate_to_datetime(header(message, "Date"))
    except (TypeError, ValueError, IndexError, OverflowError):
        moment = None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    latest = (fallback or datetime.now(UTC)) + timedelta(days=1)
    if moment is None or not EARLIEST_DATE <= moment <= latest:
        moment = fallback
    return moment.isoformat() if moment else None


def parse_iso(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


@dataclass
class Content:
    """What a reader sees: the text, the files, and forwarded messages (message/rfc822)."""

    plain: list[str] = field(default_factory=list)
    html: list[Message] = field(default_factory=list)  # decoded only when there is no plain text
    attachments: list[str] = field(default_factory=list)  # "name (type, N bytes)"
    forwarded: list[Message] = field(default_factory=list)

    @property
    def text(self) -> str:
        if self.plain:
            return clean_text("\n\n".join(self.plain))
        return clean_text("\n\n".join(html_to_text(part_text(part)) for part in self.html))


def read_content(part: Message, found: Content | None = None) -> Content:
    found = found if found is not None else Content()
    kind = part.get_content_type()
    if kind == "message/rfc822":
        inner = part.get_payload()
        found.forwarded.extend(m for m in (inner if isinstance(inner, list) else []) if isinstance(m, Message))
    elif kind.startswith("multipart/"):
        read_multipart(part, kind, found)
    elif part.is_multipart():  # message/delivery-status and the like: no text for a reader
        return found
    elif is_attachment(part, kind):
        found.attachments.append(describe_attachment(part, kind))
    elif kind in ("text/plain", "text/html"):
        if kind == "text/plain":
            found.plain.append(part_text(part))
        else:
            found.html.append(part)
    return found


def read_multipart(part: Message, kind: str, found: Content) -> None:
    children = [p for p in part.get_payload() if isinstance(p, Message)]
    if kind != "multipart/alternative":
        for child in children:
            read_content(child, found)
        return
    variant = Content()  # one reading of the alternatives: plain text when there is one
    for child in children:
        read_content(child, variant)
    found.plain.extend(variant.plain)
    found.html.extend([] if variant.plain else variant.html)
    found.attachments.extend(variant.attachments)
    found.forwarded.extend(variant.forwarded)


def is_attachment(part: Message, kind: str) -> bool:
    disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
    if disposition == "attachment":
        return True
    return kind not in ("text/plain", "text/html") or bool(part.get_filename())


def describe_attachment(part: Message, kind: str) -> str:
    name = header_text(part.get_filename() or part.get_param("name") or "") or "unnamed"
    payload = part.get_payload(decode=True)
    return f"{name} ({kind}, {len(payload or b'')} bytes)"


def part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, str):
        return payload
    return decode_bytes(payload or b"", part.get_param("charset"))


def clean_text(text: str) -> str:
    """Trimmed lines, no runs of blank lines, no NULs or non-breaking spaces."""
    lines = [" ".join(line.replace("\xa0", " ").replace("\x00", "").split())
             for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


class TextExtractor(HTMLParser):
    """Visible text of an HTML body: no script/style/head, no hidden elements."""

    SKIPPED = {"script", "style", "head", "title", "template"}
    VOID = {"br", "img", "hr", "meta", "link", "input", "area", "base", "col", "embed",
            "source", "track", "wbr", "param"}
    BLOCK = {"p", "div", "br", "tr", "li", "ul", "ol", "table", "blockquote", "section",
             "article", "header", "footer", "pre", "hr", "h1", "h2", "h3", "h4", "h5", "h6"}
    HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|"
                              r"(?:font-size|max-height)\s*:\s*0(?:px|pt|em|%)?\s*(?:;|$|!)", re.I)

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.stack: list[tuple[str, bool]] = []  # open elements, each with "hidden"

    def hidden(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def handle_starttag(self, tag, attrs):
        if tag in self.BLOCK:
            self.chunks.append("\n")
        elif tag == "td":
            self.chunks.append(" ")
        if tag in self.VOID:
            return
        attributes = dict(attrs)
        hide = (self.hidden() or tag in self.SKIPPED or "hidden" in attributes
                or bool(self.HIDDEN_STYLE.search(attributes.get("style") or "")))
        self.stack.append((tag, hide))

    def handle_startendtag(self, tag, attrs):
        if tag in self.BLOCK:
            self.chunks.append("\n")

    def handle_endtag(self, tag):
        if tag in self.BLOCK:
            self.chunks.append("\n")
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                break

    def handle_data(self, data):
        if not self.hidden():  # source line breaks are spaces; block tags make the lines
            self.chunks.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    extractor = TextExtractor()
    extractor.feed(html)
    extractor.close()
    return clean_text("".join(extractor.chunks))
