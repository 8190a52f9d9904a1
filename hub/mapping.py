"""Declarative field mappings: ``mappings/<folder>/<provider>.yaml`` turned into lead fields.

A mapping file has up to three sections, ``lead``, ``source`` and ``details``; each key names
an output field and says where it comes from and how it is cleaned::

    lead:
      phone: {from: [phone, tel, "tel-*"], transform: phone}

``from`` lists provider field names in order of preference (``*`` matches any run of
characters); the first non-empty value wins. ``transform`` is one of a closed set (see
``TRANSFORMS``); there is no expression language on purpose.
"""
from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import phonenumbers
import yaml

import mappings
from connectors.base import clean_text, unix_time, whole_number

MAPPINGS_DIR = mappings.FOLDER
SECTIONS = ("lead", "source", "details")
SOURCE_KEYS = (
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
    "gclid", "yclid", "referrer", "landing_page", "form", "mailbox", "called_number",
)
LEAD_KEYS = ("name", "phone", "email", "message")


class InvalidValue(ValueError):
    """A present value that cannot be cleaned (a phone that is not a phone)."""


def to_text(value: str, region: str) -> str | None:
    text = clean_text(value).strip()
    return text or None


def to_phone(value: str, region: str) -> str | None:
    return normalise_phone(value, region)


def normalise_phone(value: str, region: str) -> str | None:
    """E.164 for a phone typed any way; ``None`` for empty; ``InvalidValue`` for junk."""
    raw = value.strip()
    if not raw:
        return None
    digits = re.sub(r"\D", "", raw)
    if not raw.startswith("+") and region == "RU" and len(digits) == 11 and digits[0] in "78":
        raw = "+7" + digits[1:]  # 8XXXXXXXXXX and 7XXXXXXXXXX are the same Russian number
    elif not raw.startswith("+") and len(digits) > 10 and not raw.startswith("0"):
        raw = "+" + digits  # international digits without the plus, as gateways send them
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidValue("not a phone number") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidValue("not a possible phone number")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    remember_parsed(e164, number)
    return e164


PARSED_KEPT = 4096
parsed_phones: dict[str, phonenumbers.PhoneNumber | None] = {}


def stored_phone(phone: str | None) -> phonenumbers.PhoneNumber | None:
    """A stored E.164 phone parsed for the metadata lookups (line type, region, time zone);
    ``None`` when there is none. Kept: routing, confirmations and quiet hours all look at the
    same lead's phone, which ``normalise_phone`` parsed a moment before. Callers must not
    change the number they get."""
    if not phone:
        return None
    if phone in parsed_phones:
        return parsed_phones[phone]
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        number = None
    remember_parsed(phone, number)
    return number


def remember_parsed(e164: str, number: phonenumbers.PhoneNumber | None) -> None:
    """Keep what parsing ``e164`` itself gives: the number without what E.164 drops (an
    extension, how it was typed), as the metadata lookups read it."""
    if len(parsed_phones) >= PARSED_KEPT:
        parsed_phones.clear()
    if number is not None:
        number = phonenumbers.PhoneNumber(
            country_code=number.country_code, national_number=number.national_number,
            italian_leading_zero=number.italian_leading_zero, number_of_leading_zeros=number.number_of_leading_zeros)
    parsed_phones[e164] = number


EMAIL_RE = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+\.[^@\s<>(),;:\"\[\]]+$")
MAX_LOCAL_PART, MAX_ADDRESS = 64, 254  # RFC 5321's limits (and the e-mail columns' width)


def to_email(value: str, region: str) -> str | None:
    address = clean_text(value).strip().strip("<>").strip()
    if not address:
        return None
    if not EMAIL_RE.match(address):
        raise InvalidValue("not an e-mail address")
    local, _, domain = address.rpartition("@")
    try:  # IDNA refuses empty labels (a..b) and labels over 63 characters
        ascii_domain = domain.lower().encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidValue("not an e-mail address: the domain is not a valid host name") from exc
    address = f"{local}@{ascii_domain}".lower()
    if len(local) > MAX_LOCAL_PART or len(address) > MAX_ADDRESS:
        raise InvalidValue("not an e-mail address: too long")
    return address


def to_url(value: str, region: str) -> str | None:
    url = clean_text(value).strip()
    return url or None


def to_int(value: str, region: str) -> int | None:
    text = value.strip()
    if not text:
        return None
    try:
        return -whole_number(text[1:]) if text.startswith("-") else whole_number(text)
    except ValueError as exc:
        raise InvalidValue("not a whole number") from exc


def to_datetime(value: str, region: str) -> str | None:
    text = value.strip()
    if not text:
        return None
    try:
        if text.isascii() and text.isdigit():
            moment = unix_time(whole_number(text))
        elif "," in text:
            moment = parsedate_to_datetime(text)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, TypeError, OverflowError, IndexError) as exc:
        raise InvalidValue("not a date and time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


TRANSFORMS: dict[str, Callable[[str, str], Any]] = {
    "text": to_text,
    "phone": to_phone,
    "email": to_email,
    "url": to_url,
    "int": to_int,
    "datetime": to_datetime,
}


@dataclass(frozen=True)
class Rule:
    output: str
    sources: tuple[str, ...]
    transform: str

    def pick(self, fields: dict[str, str]) -> tuple[str, str] | None:
        """The first non-empty (field name, value) this rule reads."""
        for pattern in self.sources:
            if "*" in pattern:
                for name in sorted(fnmatch.filter(fields, pattern)):
                    if str(fields[name]).strip():
                        return name, fields[name]
            elif str(fields.get(pattern, "")).strip():
                return pattern, fields[pattern]
        return None


@dataclass(frozen=True)
class Mapping:
    name: str
    sections: dict[str, tuple[Rule, ...]] = field(default_factory=dict)

    def apply(self, fields: dict[str, str], region: str, outputs: frozenset[str] | None = None) -> Mapped:
        """The mapped fields; only those named in ``outputs`` when given (the intake checks
        the required fields without parsing every other one)."""
        mapped = Mapped()
        for section, rules in self.sections.items():
            target = getattr(mapped, section)
            for rule in rules:
                if outputs is not None and rule.output not in outputs:
                    continue
                picked = rule.pick(fields)
                if picked is None:
                    continue
                try:
                    value = TRANSFORMS[rule.transform](str(picked[1]), region)
                except InvalidValue as exc:
                    mapped.invalid[rule.output] = str(exc)
                    continue
                if value is not None:
                    target[rule.output] = value
        return mapped


@dataclass
class Mapped:
    lead: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)


class MappingError(ValueError):
    pass


def parse_mapping(name: str, document: Any) -> Mapping:
    if not isinstance(document, dict):
        raise MappingError(f"{name}: a mapping file holds a dictionary")
    unknown = set(document) - set(SECTIONS)
    if unknown:
        raise MappingError(f"{name}: unknown sections {sorted(unknown)}")
    sections = {}
    for section in SECTIONS:
        entries = document.get(section) or {}
        sections[section] = tuple(_parse_rule(name, section, key, spec) for key, spec in entries.items())
    return Mapping(name=name, sections=sections)


def _parse_rule(name: str, section: str, key: str, spec: Any) -> Rule:
    where = f"{name}: {section}.{key}"
    if not isinstance(spec, dict) or "from" not in spec:
        raise MappingError(f"{where}: needs 'from'")
    sources = spec["from"]
    sources = [sources] if isinstance(sources, str) else sources
    transform = spec.get("transform", "text")
    if transform not in TRANSFORMS:
        raise MappingError(f"{where}: unknown transform {transform!r} (one of {sorted(TRANSFORMS)})")
    if section == "source" and key not in SOURCE_KEYS:
        raise MappingError(f"{where}: not a source field (one of {list(SOURCE_KEYS)})")
    if section == "lead" and key not in LEAD_KEYS:
        raise MappingError(f"{where}: not a lead field (one of {list(LEAD_KEYS)})")
    return Rule(output=key, sources=tuple(str(s) for s in sources), transform=transform)


@functools.cache
def load_mapping(name: str) -> Mapping:
    """``name`` is the path below ``mappings/`` without ``.yaml`` (``webforms/tilda``)."""
    path = MAPPINGS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise MappingError(f"no mapping file mappings/{name}.yaml")
    with path.open(encoding="utf-8") as handle:
        return parse_mapping(name, yaml.safe_load(handle))
