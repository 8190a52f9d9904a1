"""The sources the hub listens to and the silence alarm.

A source is a form, a mailbox, a telephony provider, a tracked number or an inbound SMS
provider. One that sends nothing for ``quiet_after`` (default 6 h, counted in business hours;
``null`` switches it off) is silent: a broken form, a changed webhook, an expired mailbox
password look exactly like that. The scheduler opens and closes the alarm, e-mailing every
admin once when it starts and once when it clears; ``/healthz``, ``/metrics`` and the console
show it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from hub.durations import parse_duration
from hub.mapping import InvalidValue, normalise_phone
from hub.rules.tasks import business_hours
from hub.store.models import Notification, SourceState
from hub.store.writer import insert_missing

DEFAULT_QUIET = timedelta(hours=6)


@dataclass(frozen=True)
class Source:
    key: str  # as the pipeline records it: forms/landing, mail/sales, telephony/zadarma, number/+7..., sms/twilio
    kind: str  # form | mailbox | telephony | number | sms
    name: str
    quiet_after: timedelta | None  # None: no alarm


def section_quiet(section) -> timedelta | None:
    """``quiet_after`` of a section the schema keeps as written (providers, numbers)."""
    if not isinstance(section, dict) or "quiet_after" not in section:
        return DEFAULT_QUIET
    value = section["quiet_after"]
    return None if value is None else value if isinstance(value, timedelta) else parse_duration(str(value))


def number_key(number, region: str) -> str:
    try:
        return f"number/{normalise_phone(str(number), region)}"
    except InvalidValue:
        return f"number/{number}"


def configured(config) -> list[Source]:
    telephony = config.get("telephony") or {}
    found = [Source(f"forms/{key}", "form", key, form["quiet_after"]) for key, form in config["forms"].items()]
    found += [Source(f"mail/{key}", "mailbox", key, box["quiet_after"]) for key, box in config["mailboxes"].items()]
    found += [Source(f"telephony/{name}", "telephony", name, section_quiet(section))
              for name, section in telephony.items() if name != "numbers"]
    found += [Source(number_key(number, config["region"]), "number", str(number), section_quiet(section))
              for number, section in (telephony.get("numbers") or {}).items()]
    found += [Source(f"sms/{name}", "sms", name, section_quiet(section))
              for name, section in config["sms"]["inbound"].items()]
    return found


def silent_from(source: Source, state: SourceState | None, hours, now: datetime) -> datetime | None:
    """When the source fell silent (its last event, or when it was first watched, plus
    ``quiet_after`` of business hours), or None while it is not."""
    since = state and (state.last_event_at or state.watched_since)
    if source.quiet_after is None or since is None:
        return None
    due = hours.add(since, source.quiet_after)
    return due if due <= now else None


def states(hub, keys: list[str], session=None) -> dict[str, SourceState]:
    query = select(SourceState).where(SourceState.key.in_(keys))
    if session is not None:
        return {row.key: row for row in session.scalars(query)}
    with hub.db.read() as reader:
        return {row.key: row for row in reader.scalars(query)}


def alarms(hub) -> dict[str, datetime | None]:
    """Every configured source's key: when it fell silent, or None (for /healthz, /metrics)."""
    sources, hours, now = configured(hub.config), business_hours(hub.config), hub.now()
    rows = states(hub, [s.key for s in sources])
    return {s.key: silent_from(s, rows.get(s.key), hours, now) for s in sources}


def out_of_date(sources: list[Source], rows: dict, hours, now) -> bool:
    """Whether a source is not watched yet, or its alarm is not what it should be."""
    return any(s.key not in rows or bool(silent_from(s, rows[s.key], hours, now)) != bool(rows[s.key].silent_since)
               for s in sources)


def check(hub) -> list[str]:
    """Start watching new sources; open and close alarms. Returns the keys whose alarm changed."""
    sources, hours, now = configured(hub.config), business_hours(hub.config), hub.now()
    if not sources or not out_of_date(sources, states(hub, [s.key for s in sources]), hours, now):
        return []  # the usual tick: one read, no write
    changed = []
    with hub.db.write() as session:
        insert_missing(session.connection(), SourceState.__table__,
                       [{"key": s.key, "watched_since": now} for s in sources])
        rows = states(hub, [s.key for s in sources], session)
        for source in sources:
            row = rows[source.key]
            silent = silent_from(source, row, hours, now)
            if bool(silent) != bool(row.silent_since):
                tell_admins(session, hub, source, row, silent)
                row.silent_since = silent
                changed.append(source.key)
    if changed:
        hub.kicker.kick("outbox")
    return changed


def tell_admins(session, hub, source: Source, row: SourceState, silent: datetime | None) -> None:
    """One e-mail per admin when an alarm starts (``silent`` set) and one when it clears."""
    incident = (silent or row.silent_since).isoformat()
    last = row.last_event_at.isoformat(timespec="minutes") if row.last_event_at else "never"
    if silent:
        subject = f"Lead Hub: {source.key} is silent"
        text = (f"No event from {source.key} for {source.quiet_after} of business hours (last event: {last}). "
                f"Check the {source.kind}: a broken form, a changed webhook or an expired password look like this.")
    else:
        subject = f"Lead Hub: {source.key} sends events again"
        text = f"{source.key} sent an event at {last}; it had been silent since {row.silent_since.isoformat()}."
    for admin in (m for m in hub.config["team"] if m["role"] == "admin" and m["email"]):
        rule = f"silence:{source.key}:{incident}:{'start' if silent else 'clear'}:{admin['id']}"[:100]
        session.add(Notification(lead_id=None, rule=rule, channel="email", sender=hub.config["email"]["sender"],
                                 to=admin["email"], subject=subject, text=text, status="pending",
                                 next_attempt_at=hub.now(), created_at=hub.now()))
