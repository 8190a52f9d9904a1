"""Outgoing e-mail as bytes, built here rather than by the ``email`` package's policies.

Client-supplied text (a lead's name in a subject, the subject of the client's own mail) goes
into a header only this way: ``clean`` turns control characters into spaces, ``words`` encodes
every word that is not plain ASCII, or that looks like an RFC 2047 encoded word, as UTF-8
base64 encoded words (so an encoded word the client typed stays literal text), and ``header``
folds the line at those word boundaries. How the ``email`` package folds such text has changed between
CPython patch levels, once turning a CR/LF inside a client's encoded word into new header
lines; built here, the bytes are the same on every Python version.
"""
from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Callable
from datetime import datetime
from email.utils import format_datetime, parseaddr

from connectors.base import Outgoing, PermanentFailure

LINE = 78
WORD_BYTES = 40  # one encoded word: "=?utf-8?b?" + 56 base64 characters + "?=", 68 in all
LONGEST_PLAIN = 60  # a longer plain word is encoded, so that it can be folded
SUBJECT_LIMIT = 250
CONTROL = ("Cc", "Zl", "Zp", "Cs")  # controls, line and paragraph separators, lone surrogates
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
ADDRESS_RE = re.compile(rf"^{ATEXT}(?:\.{ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*$")
MESSAGE_ID_RE = re.compile(r"^<[!-;=?-~]{1,900}>$")  # printable ASCII, no angle brackets
TEXT_RE = re.compile(r"^[!-~]+$")
ATOM_RE = re.compile(rf"^{ATEXT}$")
ID_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")


def build(message: Outgoing, sender: str, date: datetime) -> tuple[str, bytes]:
    """(Message-ID, the whole message) for ``message`` from ``sender`` (``Name <address>``)."""
    name, address = parseaddr(sender)
    check_address("from", address)
    check_address("to", message.to)
    message_id = new_message_id(message.idempotency_key, address, date)
    head = [
        header("From", phrase(name) + [f"<{address}>"]),
        header("To", [message.to]),
        header("Subject", unstructured(shorten(clean(message.subject or ""), SUBJECT_LIMIT))),
        header("Date", [format_datetime(date)]),
        header("Message-ID", [message_id]),
        *thread_headers(message.reply_to_message_id),
        b"MIME-Version: 1.0\r\n",
        b'Content-Type: text/plain; charset="utf-8"\r\n',
        b"Content-Transfer-Encoding: base64\r\n",
    ]
    return message_id, b"".join(head) + b"\r\n" + body(message.text)


def check_address(field: str, address: str) -> None:
    if not ADDRESS_RE.match(address or ""):
        raise PermanentFailure(f"{field}: {address!r} is not an ASCII e-mail address a header can hold")


def new_message_id(key: str | None, address: str, date: datetime) -> str:
    """Unique per send: the outbox row's key and the time (a retry is a new message)."""
    local = ID_UNSAFE_RE.sub("-", key or "hub").strip("-.") or "hub"
    return f"<{local}.{int(date.timestamp())}@{address.rpartition('@')[2].lower()}>"


def thread_headers(message_id: str | None) -> list[bytes]:
    """In-Reply-To and References for a well-formed Message-ID; none for anything else."""
    if not message_id or not MESSAGE_ID_RE.match(message_id):
        return []
    return [header("In-Reply-To", [message_id]), header("References", [message_id])]


def clean(text: str) -> str:
    """Control characters become spaces; runs of whitespace become one space."""
    kept = "".join(" " if unicodedata.category(char) in CONTROL else char for char in text)
    return " ".join(kept.split())


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def unstructured(text: str) -> list[str]:
    """The words of a Subject: printable ASCII words as they are, the rest encoded."""
    return words(text, lambda word: bool(TEXT_RE.match(word)))


def phrase(text: str) -> list[str]:
    """The words of a display name: RFC 5322 atoms as they are, the rest encoded."""
    return words(clean(text), lambda word: bool(ATOM_RE.match(word)))


def words(text: str, plain: Callable[[str], bool]) -> list[str]:
    """Header words; consecutive words to encode are encoded together with the spaces between
    them, because a reader drops whitespace between two encoded words."""
    found: list[str] = []
    run: list[str] = []
    for word in text.split():
        if plain(word) and "=?" not in word and len(word) <= LONGEST_PLAIN:
            found += encoded_words(" ".join(run)) + [word]
            run = []
        else:
            run.append(word)
    return found + encoded_words(" ".join(run))


def encoded_words(text: str) -> list[str]:
    """RFC 2047 ``=?utf-8?b?…?=`` words of at most ``WORD_BYTES`` bytes, split between characters."""
    chunks: list[bytes] = []
    chunk = b""
    for char in text:
        data = char.encode("utf-8")
        if len(chunk) + len(data) > WORD_BYTES:
            chunks.append(chunk)
            chunk = b""
        chunk += data
    chunks += [chunk] if chunk else []
    return [f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=" for chunk in chunks]


def header(name: str, items: list[str]) -> bytes:
    """``Name: word word`` folded before a word that would pass 78 characters."""
    lines, line = [], f"{name}:"
    for item in items:
        if len(line) + 1 + len(item) > LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + item
    return ("\r\n".join(lines + [line]) + "\r\n").encode("ascii")


def body(text: str) -> bytes:
    """The text with CRLF line ends, UTF-8, base64 in lines of 76 characters."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    data = "\r\n".join(lines).encode("utf-8", "replace")
    return base64.encodebytes(data).replace(b"\n", b"\r\n")
