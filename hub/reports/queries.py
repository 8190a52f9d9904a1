"""The reports: channels and campaigns, managers, leads per day. A period is whole days in the
team's time zone; a lead belongs to the period it was created in. Each report attributes a
lead to a touch by the chosen model: its first touch, its last, or its last non-direct touch
(the last unless that one was direct, a visit with no tags and no click id)."""
from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Select, String, case, cast, distinct, func, or_, select

from hub.mapping import SOURCE_KEYS
from hub.store.models import Lead, LeadFact, LeadHistory, Task

MODELS = ("last_non_direct", "first", "last")
DIMENSIONS = ("channel", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "form",
              "mailbox", "called_number", "click_id", "class")
FILTERS = ("channel", "status", "assignee", "class", *SOURCE_KEYS)
CLASSES = ("A", "B", "C", None)  # None: leads without a score
OPEN = ("new", "in_progress")
AT_RISK = 20  # open leads listed by value lost from maximum
CAMPAIGN_KEYS = ("utm_source", "utm_medium", "utm_campaign", "gclid", "yclid")  # any of them: not direct
FACT_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "form", "mailbox",
             "called_number", "click_id")  # the touch fields lead_facts holds
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


# -- the reports in SQL, over lead_facts -------------------------------------------------------

def fact(touch: str, key: str):
    return getattr(LeadFact, f"{touch}_{key}")


def touch_value(key: str, model: str):
    """A field of the touch the model attributes a lead to, as SQL over ``lead_facts`` (see
    ``attributed`` and ``value_of``): ``last_direct`` picks the first touch's field for the
    last non-direct model. The fields reports never group by come from the lead's JSON."""
    if key not in FACT_KEYS:
        return json_touch_value(key, model)
    first, last = (case((fact(touch, "click"), "yes"), else_="no") if key == "click_id" else fact(touch, key)
                   for touch in ("first", "last"))
    if model == "first":
        return first
    if model == "last":
        return last
    return case((LeadFact.last_direct, first), else_=last)


def json_touch_value(key: str, model: str):
    first = Lead.source[key].as_string()
    no_last = or_(Lead.last_source.is_(None), cast(Lead.last_source, String).in_(("{}", "null")))
    last = case((no_last, first), else_=Lead.last_source[key].as_string())
    if model == "first":
        return first
    if model == "last":
        return last
    return case((LeadFact.last_direct, first), else_=last)


def dimension(key: str, model: str):
    columns = {"channel": LeadFact.channel, "status": LeadFact.status, "assignee": LeadFact.assignee_id,
               "class": Lead.score_class}
    return columns[key] if key in columns else touch_value(key, model)


def reads_the_lead(key: str) -> bool:
    """Whether ``dimension(key)`` needs the lead's own row beside its facts."""
    return key not in (*FACT_KEYS, "channel", "status", "assignee")


def in_period(statement: Select, query: Query, by: str | None = None) -> Select:
    """The statement over the period's facts that pass the filters, grouped ``by`` a dimension."""
    period = statement.where(LeadFact.created_at >= query.start, LeadFact.created_at < query.end)
    return filtered(period, query, by)


def filtered(statement: Select, query: Query, by: str | None = None) -> Select:
    """Only the facts that pass the filters (source filters on the attributed touch); a filter
    or a grouping on a field the facts lack joins the lead."""
    statement = statement.where(*(dimension(key, query.model) == value for key, value in query.filters))
    if any(reads_the_lead(key) for key in (*(key for key, _ in query.filters), *([by] if by else []))):
        statement = statement.join(Lead, Lead.id == LeadFact.lead_id)
    return statement


def counts(session, query: Query, key, by: str | None = None) -> dict:
    """key -> (leads, converted)."""
    converted = func.sum(case((LeadFact.status == "converted", 1), else_=0))
    statement = in_period(select(key.label("key"), func.count(), converted).select_from(LeadFact), query, by)
    return {row.key: (row[1], int(row[2] or 0)) for row in session.execute(statement.group_by(key))}


def ranked_responses(query: Query, key, by: str | None = None):
    """The period's response times, numbered within each value of ``key`` in ascending order."""
    ranked = select(key.label("key"), LeadFact.response_seconds.label("seconds"),
                    func.row_number().over(partition_by=key, order_by=LeadFact.response_seconds).label("rank"),
                    func.count().over(partition_by=key).label("total")).select_from(LeadFact)
    return in_period(ranked, query, by).where(LeadFact.response_seconds.is_not(None)).subquery()


def medians(session, query: Query, key, by: str | None = None) -> dict:
    """key -> the median response: the middle one, or the mean of the two middle ones."""
    ranked = ranked_responses(query, key, by)
    middle = or_(ranked.c.rank == (ranked.c.total + 1) // 2, ranked.c.rank == (ranked.c.total + 2) // 2)
    statement = select(ranked.c.key, func.avg(ranked.c.seconds)).where(middle).group_by(ranked.c.key)
    return {key: float(value) for key, value in session.execute(statement)}


def percentiles(session, query: Query, key, share: int) -> dict:
    """key -> the nearest-rank percentile (``share`` in percent; see ``percentile``): the
    value at rank ceil(share * n / 100), in integers so both databases agree."""
    ranked = ranked_responses(query, key)
    rank = (ranked.c.total * share + 99) // 100  # at least 1, as total is
    statement = select(ranked.c.key, ranked.c.seconds).where(ranked.c.rank == rank)
    return {key: float(value) for key, value in session.execute(statement)}


def outcome_row(key, leads: int, converted: int, response_median) -> dict:
    return {"key": key, "leads": leads, "converted": converted,
            "conversion": round(converted / leads, 4) if leads else 0.0, "first_response_median": response_median}


def channels(session, query: Query, by: str) -> list[dict]:
    """One row per value of ``by`` (a source field, ``channel`` or ``click_id``), most leads first."""
    if by not in DIMENSIONS:
        raise ReportError("by", f"one of {', '.join(DIMENSIONS)}")
    key = dimension(by, query.model)
    found, middle = counts(session, query, key, by), medians(session, query, key, by)
    rows = [outcome_row(value, leads, converted, middle.get(value)) for value, (leads, converted) in found.items()]
    return sorted(rows, key=lambda row: (-row["leads"], row["key"] is None, str(row["key"])))  # "none" last


def managers(session, query: Query) -> list[dict]:
    """Per assignee: leads, first response (median, 90th percentile), SLA breaches (leads that
    were escalated), escalations, callbacks made (callback tasks closed), conversion."""
    key = LeadFact.assignee_id
    found = {member: row for member, row in counts(session, query, key).items() if member}
    middle, p90 = medians(session, query, key), percentiles(session, query, key, 90)
    escalated = session.execute(in_period(
        select(key, func.count(), func.count(distinct(LeadHistory.lead_id))).select_from(LeadFact)
        .join(LeadHistory, LeadHistory.lead_id == LeadFact.lead_id).where(LeadHistory.action == "escalated"),
        query).group_by(key))
    escalations = {member: (count, leads) for member, count, leads in escalated}
    callbacks = dict(session.execute(in_period(
        select(Task.assignee_id, func.count()).select_from(LeadFact).join(Task, Task.lead_id == LeadFact.lead_id)
        .where(Task.kind == "callback", Task.status == "done", key.is_not(None)), query)
        .group_by(Task.assignee_id)).all())
    rows = []
    for member in sorted(found):
        leads, converted = found[member]
        count, breaches = escalations.get(member, (0, 0))
        rows.append(outcome_row(member, leads, converted, middle.get(member))
                    | {"first_response_p90": p90.get(member), "sla_breaches": breaches, "escalations": count,
                       "callbacks": callbacks.get(member, 0)})
    return rows


def timeseries(session, query: Query) -> dict:
    """Leads per day (in the team's zone) by channel, every day of the period, zeros included."""
    days = [query.since + timedelta(days=n) for n in range((query.until - query.since).days + 1)]
    counts = Counter()
    for bucket, channel, count in session.execute(day_counts(session, query, days)):
        counts[(local_day(bucket, query, days), channel)] += count
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
    responses = [seconds for seconds in map(response_seconds, leads) if seconds is not None]
    row = outcome_row(key, len(leads), sum(lead.status == "converted" for lead in leads), median(responses))
    estimated = [lead for lead in leads if value_lost(lead) is not None]
    row.update(open=sum(lead.status in OPEN for lead in leads),
               value=round(sum(lead.score_value or 0 for lead in leads), 2),
               expected=round(sum(lead.score_value * lead.score_probability for lead in estimated), 2),
               value_lost=round(sum(value_lost(lead) for lead in estimated), 2),
               unestimated=sum(lead.status in OPEN and value_lost(lead) is None for lead in leads))
    return row


def day_counts(session, query: Query, days: list[date]) -> Select:
    """Leads per bucket and channel. PostgreSQL buckets by the day in the team's zone; SQLite,
    which knows no zones, by the day at the zone's offset when the period has one offset, and
    otherwise (a clock change inside the period) by the UTC quarter hour, which Python then
    puts in its day."""
    created = LeadFact.created_at
    if session.get_bind().dialect.name != "sqlite":
        bucket = func.date(func.timezone(query.zone.key, created))
    elif len(offsets := zone_offsets(query, days)) == 1:
        bucket = func.date(created, f"{offsets.pop():+d} minutes")
    else:
        quarter = cast(func.substr(created, 15, 2), Integer) / 15
        bucket = func.substr(created, 1, 14, type_=String) + cast(quarter * 15, String)
    return in_period(select(bucket, LeadFact.channel, func.count()).select_from(LeadFact), query) \
        .group_by(bucket, LeadFact.channel)


def zone_offsets(query: Query, days: list[date]) -> set[int]:
    moments = [datetime.combine(day, time.min, query.zone) for day in days] + [query.end]
    return {int(moment.utcoffset().total_seconds() // 60) for moment in moments}


def local_day(bucket, query: Query, days: list[date]) -> date:
    if isinstance(bucket, date):
        return bucket
    if len(bucket) == 10:
        return date.fromisoformat(bucket)
    hour, minutes = bucket[:13], int(bucket[14:])
    moment = datetime.fromisoformat(f"{hour}:{minutes:02d}").replace(tzinfo=UTC)
    return moment.astimezone(query.zone).date()

