"""Small readers of provider fields shared by several provider modules. Every number and time
a provider sends is read here (through ``connectors.base.whole_number``), so a field holding
``'²'``, Arabic-Indic digits or ten thousand digits is a 400 naming it, never a crash."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime

from connectors.base import BadRequest, unix_time, whole_number


def integer(fields: Mapping[str, str], name: str) -> int | None:
    """A whole-number field; ``None`` when absent or blank; ``BadRequest`` naming it otherwise."""
    return whole(fields.get(name, ""), name)


def whole(text: str, name: str) -> int | None:
    """``text`` as a whole number; ``None`` when blank; ``BadRequest`` naming ``name`` otherwise."""
    if not text.strip():
        return None
    try:
        return whole_number(text)
    except ValueError as exc:
        raise BadRequest(f"{name} is not a whole number", {name: "invalid"}) from exc


def whole_or_none(text: str) -> int | None:
    """``text`` as a whole number, or ``None`` when it is not one (for lenient readers)."""
    try:
        return whole_number(text)
    except ValueError:
        return None


def unix_time_iso(text: str) -> str | None:
    """ISO 8601 (UTC) of a Unix time in seconds; ``None`` when it is not one or out of range."""
    seconds = whole_or_none(text)
    try:
        return unix_time(seconds).isoformat() if seconds is not None else None
    except ValueError:
        return None


def rfc2822_seconds(fields: Mapping[str, str], name: str) -> float | None:
    """An RFC 2822 date field as Unix seconds; ``None`` when blank; ``BadRequest`` naming it
    when it is no date or one ``datetime`` cannot hold (year 99999, an offset of days)."""
    text = fields.get(name, "").strip()
    if not text:
        return None
    try:
        moment = parsedate_to_datetime(text)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError) as exc:
        raise BadRequest(f"{name} is not an RFC 2822 date", {name: "invalid"}) from exc
