"""Normalise: a stored raw event, parsed again by its provider module and mapped into neutral
lead fields, source attribution and touch details. Pure: no database, no queue."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from connectors.base import Inbound, Parsed, clean_text
from hub import registry
from hub.config import resolve_secrets
from hub.mapping import SOURCE_KEYS, load_mapping, normalise_phone
from hub.pipeline import calls

URL_ATTRIBUTION = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
                   "gclid", "yclid")
TRACKED_KEYS = (*URL_ATTRIBUTION, "referrer", "landing_page")  # what the tracking script keeps per touch
# Header-derived fields the webforms connectors add for the mapping's fallbacks: they are
# attribution, not what the client typed, so they stay out of the touch's field list.
DERIVED_FIELDS = ("http_referer", "http_origin")
# Fields that differ between two clicks of one submit button; a fingerprint ignores them.
VOLATILE_FIELDS = ("tranid", "submission_id", "_submission_id", "timestamp", "_ts")
KEY_WIDTH = 300  # the width of the touch_key and delivery_key columns


@dataclass
class Normalised:
    channel: str
    touch_key: str
    at: datetime
    lead: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    last_source: dict[str, Any] = field(default_factory=dict)  # the latest touch, when the form names it
    details: dict[str, Any] = field(default_factory=dict)
    ignore: str | None = None
    invalid: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # the provider's neutral extras

    @property
    def call(self):
        return self.extra.get("call")


def endpoint_settings(config, kind: str, provider: str, endpoint: str | None) -> dict | None:
    """The config section a delivery to /hooks/<kind>/<provider> is handled with, secrets
    resolved; ``None`` when nothing is configured there."""
    if kind == "forms":
        form = config["forms"].get(endpoint or provider)
        if form is None:
            return None
        return {**resolve_secrets(form), "key": endpoint or provider}
    if kind == "mail":  # the mailbox's section (no secret needed to parse) and the region
        mailbox = config["mailboxes"].get(endpoint)
        return None if mailbox is None else {**mailbox, "key": endpoint, "region": config["region"]}
    section = config["sms"]["inbound"] if kind == "sms" else config.get(kind, {})
    settings = section.get(provider) if isinstance(section, dict) else None
    if settings is None:
        return None
    return {**resolve_secrets(settings), "public_url": config.get("public_url")}


def inbound_of(raw) -> Inbound:
    return Inbound(method=raw.method, url=raw.url, subpath=raw.subpath,
                   query=tuple(tuple(pair) for pair in raw.query), headers=dict(raw.headers),
                   body=raw.body, remote_addr=raw.remote_addr)


def normalise(config, raw) -> list[Normalised]:
    module = registry.intake(raw.kind, raw.provider)
    settings = endpoint_settings(config, raw.kind, raw.provider, raw.endpoint) or {}
    parsed = module.parse(inbound_of(raw), settings)
    return [normalise_parsed(config, module, raw, item, index) for index, item in enumerate(parsed)]


def normalise_parsed(config, module, raw, parsed: Parsed, index: int) -> Normalised:
    """A malformed value (an e-mail that is no address) is left out of the lead and named in
    the touch's ``problems``; the raw event keeps it as sent."""
    parsed = replace(parsed, fields={clean_text(name): clean_text(value) for name, value in parsed.fields.items()})
    mapped = load_mapping(module.MAPPING).apply(parsed.fields, config["region"])
    source = complete_source({key: None for key in SOURCE_KEYS} | mapped.source)
    if raw.kind == "forms":
        source["form"] = raw.endpoint
    if raw.kind == "mail":
        source["mailbox"] = raw.endpoint
    if source.get("called_number"):
        track_call(config, source)
    key = storable_key(parsed.extra.get("touch_key") or f"event:{raw.event_id}:{index}")
    details = touch_details(raw, parsed, mapped.details) | ({"problems": mapped.invalid} if mapped.invalid else {})
    return Normalised(
        channel=parsed.extra.get("channel") or module.CHANNEL, touch_key=key, at=raw.received_at,
        lead=mapped.lead, source=source, last_source=last_touch(parsed.fields, source), details=details,
        ignore=None if raw.override == "as-lead" else parsed.ignore, invalid=mapped.invalid,
        extra=parsed.extra)


def storable_key(key: str) -> str:
    """A key built from a provider's ids, made storable: clean text, and a digest in place of what
    would not fit (cutting it off could make two deliveries one)."""
    key = clean_text(key)
    if len(key) <= KEY_WIDTH:
        return key
    return key[:KEY_WIDTH - 65] + ":" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def track_call(config, source: dict) -> None:
    """Call tracking: each ad channel has its own number; the number called names the source."""
    numbers = (config.get("telephony") or {}).get("numbers") or {}
    for number, attribution in numbers.items():
        if normalise_phone(str(number), config["region"]) == source["called_number"]:
            for key, value in attribution.items():
                if key != "quiet_after":  # the number's silence alarm, not attribution
                    source[key] = source.get(key) or value
            return


def touch_details(raw, parsed: Parsed, mapped_details: dict) -> dict:
    if raw.kind == "forms":
        fields = {k: v for k, v in parsed.fields.items() if k not in DERIVED_FIELDS}
        return {"form": raw.endpoint, "fields": fields} | mapped_details
    if raw.kind == "mail":
        return {"mailbox": raw.endpoint, "message_id": None, "subject": None} | mapped_details
    if parsed.extra.get("call"):
        return calls.initial_details(parsed.extra["call"], mapped_details)
    return mapped_details


def last_touch(fields: dict[str, str], first: dict[str, Any]) -> dict[str, Any]:
    """The latest touch the tracking script put in ``last_*`` hidden fields, with the first
    touch's form, mailbox and number; the first touch itself when the form sent none."""
    if not fields.get("last_landing_page"):
        return first
    touch = {key: (fields.get(f"last_{key}") or "").strip() or None for key in TRACKED_KEYS}
    return complete_source(first | touch)


def complete_source(source: dict[str, Any]) -> dict[str, Any]:
    """Fill attribution the hidden fields did not carry from the landing page's query string,
    then from the referrer's (an ad click's UTM tags live in the landing URL)."""
    for url_key in ("landing_page", "referrer"):
        missing = [key for key in URL_ATTRIBUTION if not source.get(key)]
        if not could_name(source.get(url_key), missing):
            continue
        query = query_of(source.get(url_key))
        for key in missing:
            if query.get(key):
                source[key] = query[key]
    return source


def could_name(url: str | None, keys: list[str]) -> bool:
    """Whether the URL may carry one of ``keys``: parsing a query is most of a form's
    attribution work, and usually the URL names none of the keys still missing."""
    return bool(url and keys) and ("%" in url or any(key in url for key in keys))


def query_of(url: str | None) -> dict[str, str]:
    if not url:
        return {}
    try:
        return {k: v for k, v in parse_qsl(urlsplit(url).query) if v.strip()}
    except ValueError:
        return {}


def fingerprint(form_key: str, fields: dict[str, str]) -> str:
    """Same form, same fields: the identity of a double-clicked submit."""
    kept = {k: v for k, v in fields.items() if k not in VOLATILE_FIELDS}
    payload = json.dumps([form_key, sorted(kept.items())], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()
