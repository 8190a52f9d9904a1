"""The reports: channels and campaigns, managers, leads per day. A period is whole days in the
team's time zone; a lead belongs to the period it was created in. Each report attributes a
lead to a touch by the chosen model: its first touch, its last, or its last non-direct touch
(the last unless that one was direct, a visit with no tags and no click id)."""
from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from hub.mapping import SOURCE_KEYS
from hub.store.models import Lead, LeadHistory, Task

MODELS = ("last_non_direct", "first", "last")
DIMENSIONS = ("channel", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "form",
              "mailbox", "called_number", "click_id", "class")
FILTERS = ("channel", "status", "assignee", "class", *SOURCE_KEYS)
CLASSES = ("A", "B", "C", None)  # None: leads without a score
OPEN = ("new", "in_progress")
AT_RISK = 20  # open leads listed by value lost from maximum
CAMPAIGN_KEYS = ("utm_source", "utm_medium", "utm_campaign", "gclid", "yclid")  # any of them: not direct
DEFAULT_DAYS = 30


class ReportError(ValueError):
    """A parameter a report cannot use: ``field`` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Query:
    since: date
    until: date  # inclusive
    zone: ZoneInfo
    model: str = "last_non_direct"
    filters: tuple[tuple[str, str], ...] = ()

    @property
    def start(self) -> datetime:
        return datetime.combine(self.since, time.min, self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.until + timedelta(days=1), time.min, self.zone)


def parse_query(args, timezone: str, today: date) -> Query:
    """``from``/``to`` (ISO dates, inclusive; the last 30 days by default), ``model`` and filters."""
    until = parse_day(args, "to") or today
    since = parse_day(args, "from") or until - timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise ReportError("from", "must not be after to")
    model = args.get("model") or MODELS[0]
    if model not in MODELS:
        raise ReportError("model", f"one of {', '.join(MODELS)}")
    chosen = tuple((key, args[key]) for key in FILTERS if args.get(key))
    return Query(since, until, ZoneInfo(timezone), model, chosen)


FIRST_DAY, LAST_DAY = date(1, 2, 1), date(9999, 12, 30)  # room for the default period and the day after


def parse_day(args, key: str) -> date | None:
    if not args.get(key):
        return None
    try:
        day = date.fromisoformat(args[key])
    except ValueError:
        raise ReportError(key, "a date, YYYY-MM-DD") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ReportError(key, f"a date from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}")
    return day


def is_direct(source: dict) -> bool:
    return not any((source or {}).get(key) for key in CAMPAIGN_KEYS)


def attributed(lead, model: str) -> dict:
    first, last = lead.source or {}, lead.last_source or lead.source or {}
    if model == "first":
        return first
    if model == "last" or not is_direct(last):
        return last
    return first


def value_of(lead, source: dict, key: str):
    if key == "channel":
        return lead.channel
    if key == "assignee":
        return lead.assignee_id
    if key == "status":
        return lead.status
    if key == "class":
        return lead.score_class
    if key == "click_id":
        return "yes" if source.get("gclid") or source.get("yclid") else "no"
    return source.get(key)


def leads_of(session, query: Query) -> list:
    """The period's leads that pass the filters (source filters on the attributed touch)."""
    columns = (Lead.id, Lead.name, Lead.channel, Lead.status, Lead.assignee_id, Lead.source, Lead.last_source,
               Lead.created_at, Lead.handled_at, Lead.score_class, Lead.score_probability, Lead.score_value)
    rows = session.execute(select(*columns).where(Lead.created_at >= query.start, Lead.created_at < query.end)
                           .order_by(Lead.id))
    return [row for row in rows
            if all(value_of(row, attributed(row, query.model), key) == value for key, value in query.filters)]


def response_seconds(lead) -> float | None:
    return None if lead.handled_at is None else (lead.handled_at - lead.created_at).total_seconds()


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: list[float], share: float) -> float | None:
    """Nearest rank: the smallest value with at least ``share`` of the values at or below it."""
    if not values:
        return None
    return sorted(values)[max(math.ceil(share * len(values)), 1) - 1]


def outcome_row(key, leads: list) -> dict:
    converted = sum(lead.status == "converted" for lead in leads)
    responses = [s for s in map(response_seconds, leads) if s is not None]
    return {"key": key, "leads": len(leads), "converted": converted,
            "conversion": round(converted / len(leads), 4) if leads else 0.0,
            "first_response_median": median(responses)}


def channels(session, query: Query, by: str) -> list[dict]:
    """One row per value of ``by`` (a source field, ``channel`` or ``click_id``), most leads first."""
    if by not in DIMENSIONS:
        raise ReportError("by", f"one of {', '.join(DIMENSIONS)}")
    groups = defaultdict(list)
    for lead in leads_of(session, query):
        groups[value_of(lead, attributed(lead, query.model), by)].append(lead)
    rows = [outcome_row(key, members) for key, members in groups.items()]
    return sorted(rows, key=lambda row: (-row["leads"], row["key"] is None, str(row["key"])))  # "none" last


def managers(session, query: Query) -> list[dict]:
    """Per assignee: leads, first response (median, 90th percentile), SLA breaches (leads that
    were escalated), escalations, callbacks made (callback tasks closed), conversion."""
    leads = [lead for lead in leads_of(session, query) if lead.assignee_id]
    chosen = {lead.id for lead in leads}
    in_period = select(Lead.id).where(Lead.created_at >= query.start, Lead.created_at < query.end)
    escalations = Counter({lead_id: count for lead_id, count in session.execute(
        select(LeadHistory.lead_id, func.count()).where(LeadHistory.action == "escalated",
                                                        LeadHistory.lead_id.in_(in_period))
        .group_by(LeadHistory.lead_id)) if lead_id in chosen})
    callbacks = Counter()
    for lead_id, member, count in session.execute(
            select(Task.lead_id, Task.assignee_id, func.count()).where(
                Task.kind == "callback", Task.status == "done", Task.lead_id.in_(in_period))
            .group_by(Task.lead_id, Task.assignee_id)):
        if lead_id in chosen:
            callbacks[member] += count
    groups = defaultdict(list)
    for lead in leads:
        groups[lead.assignee_id].append(lead)
    return [manager_row(member, groups[member], escalations, callbacks.get(member, 0)) for member in sorted(groups)]


def manager_row(member: str, leads: list, escalations: Counter, callbacks: int) -> dict:
    responses = [s for s in map(response_seconds, leads) if s is not None]
    row = outcome_row(member, leads)
    row.update(first_response_p90=percentile(responses, 0.9),
               sla_breaches=sum(escalations[lead.id] > 0 for lead in leads),
               escalations=sum(escalations[lead.id] for lead in leads), callbacks=callbacks)
    return row


def timeseries(session, query: Query) -> dict:
    """Leads per day (in the team's zone) by channel, every day of the period, zeros included."""
    days = [query.since + timedelta(days=n) for n in range((query.until - query.since).days + 1)]
    counts = Counter((lead.created_at.astimezone(query.zone).date(), lead.channel)
                     for lead in leads_of(session, query))
    found = sorted({channel for _day, channel in counts})
    return {"days": [day.isoformat() for day in days],
            "series": {channel: [counts[(day, channel)] for day in days] for channel in found}}


def value_lost(lead) -> float | None:
    """How far an open lead's expected outcome falls short of its best case: value × (1 −
    probability). None without a value or a learned probability."""
    if lead.status not in OPEN or lead.score_value is None or lead.score_probability is None:
        return None
    return lead.score_value * (1 - lead.score_probability)


def scores(session, query: Query) -> dict:
    """Per class (and unscored leads): leads, conversion, the value of all of them, and for the
    open ones the expected value (Σ value × probability) and the value lost from maximum
    (Σ value × (1 − probability)); then the open leads losing the most."""
    leads = leads_of(session, query)
    groups = defaultdict(list)
    for lead in leads:
        groups[lead.score_class].append(lead)
    rows = [score_row(key, groups[key]) for key in CLASSES if groups.get(key)]
    risky = sorted((lead for lead in leads if value_lost(lead) is not None),
                   key=lambda lead: (-value_lost(lead), lead.id))
    return {"rows": rows, "at_risk": [{"number": lead.id, "name": lead.name, "class": lead.score_class,
                                       "status": lead.status, "assignee": lead.assignee_id, "value": lead.score_value,
                                       "probability": lead.score_probability,
                                       "value_lost": round(value_lost(lead), 2)} for lead in risky[:AT_RISK]]}


def score_row(key, leads: list) -> dict:
    row = outcome_row(key, leads)
    estimated = [lead for lead in leads if value_lost(lead) is not None]
    row.update(open=sum(lead.status in OPEN for lead in leads),
               value=round(sum(lead.score_value or 0 for lead in leads), 2),
               expected=round(sum(lead.score_value * lead.score_probability for lead in estimated), 2),
               value_lost=round(sum(value_lost(lead) for lead in estimated), 2),
               unestimated=sum(lead.status in OPEN and value_lost(lead) is None for lead in leads))
    return row
