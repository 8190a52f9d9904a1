"""The reports: channels and campaigns, managers, leads per day. A period is whole days in the
team's time zone; a lead belongs to the period it was created in. Each report attributes a
lead to a touch by the chosen model: its first touch, its last, or its last non-direct touch
(the last unless that one was direct, a visit with no tags and no click id)."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import String, case, cast, or_, select

from hub.mapping import SOURCE_KEYS
from hub.reports import snapshots
from hub.reports.frame import TOUCH_KEYS, Frame, micros
from hub.store.models import Lead, LeadFact

MODELS = ("last_non_direct", "first", "last")
DIMENSIONS = ("channel", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "form",
              "mailbox", "called_number", "click_id", "class")
FILTERS = ("channel", "status", "assignee", "class", *SOURCE_KEYS)
CLASSES = ("A", "B", "C", None)  # None: leads without a score
OPEN = ("new", "in_progress")
AT_RISK = 20  # open leads listed by value lost from maximum
CAMPAIGN_KEYS = ("utm_source", "utm_medium", "utm_campaign", "gclid", "yclid")  # any of them: not direct
FACT_KEYS = (*TOUCH_KEYS, "click_id")  # the touch fields lead_facts holds
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

def json_touch_value(key: str, model: str):
    first = Lead.source[key].as_string()
    no_last = or_(Lead.last_source.is_(None), cast(Lead.last_source, String).in_(("{}", "null")))
    last = case((no_last, first), else_=Lead.last_source[key].as_string())
    if model == "first":
        return first
    if model == "last":
        return last
    return case((LeadFact.last_direct, first), else_=last)


# -- the reports, over the period's frame (hub.reports.frame) ----------------------------------

OWN_KEYS = ("channel", "status", "assignee", "class")  # the lead's own fields


def columns_for(keys, model: str) -> set[str]:
    """The lead columns that ``keys`` (dimensions and filters) read under ``model``."""
    touches = {"first": ("first",), "last": ("last",)}.get(model, ("first", "last"))
    needed = set()
    for key in keys:
        if key in OWN_KEYS:
            needed.add(key)
        elif key in TOUCH_KEYS or key == "click_id":
            column = "click" if key == "click_id" else key
            needed.update(f"{touch}_{column}" for touch in touches)
            needed.update(["last_direct"] if model == "last_non_direct" else [])
    return needed


def load_leads(session, query: Query, keys, *columns: str, parts: dict | None = None) -> Frame:
    wanted = {"leads": columns_for([*keys, *(key for key, _ in query.filters)], query.model) | set(columns)}
    return snapshots.load(session, query.start, query.end, wanted | (parts or {}))


def dimension(frame: Frame, key: str, model: str) -> tuple[np.ndarray, str]:
    """The codes of ``key`` per lead under ``model``, and their family."""
    if key in OWN_KEYS:
        return frame.column("leads", key), key
    field = "click" if key == "click_id" else key
    if model in ("first", "last"):
        chosen = frame.column("leads", f"{model}_{field}")
    else:
        chosen = np.where(frame.column("leads", "last_direct"), frame.column("leads", f"first_{field}"),
                          frame.column("leads", f"last_{field}"))
    if key != "click_id":
        return chosen, key
    return np.where(chosen, frame.intern("click_id", "yes"), frame.intern("click_id", "no")), "click_id"


def passing(session, frame: Frame, query: Query) -> np.ndarray:
    """Which of the frame's leads pass the filters (source filters on the attributed touch).
    A field the frame lacks (a click id's value, the referrer, the landing page) is matched in
    the database, on the period's leads."""
    keep = np.ones(len(frame.column("leads", "lead_id")), bool)
    for key, value in query.filters:
        if key in OWN_KEYS or key in TOUCH_KEYS:
            codes, family = dimension(frame, key, query.model)
            keep &= codes == frame.code(family, value)
        else:
            found = session.scalars(select(LeadFact.lead_id).join(Lead, Lead.id == LeadFact.lead_id).where(
                LeadFact.created_at >= query.start, LeadFact.created_at < query.end,
                json_touch_value(key, query.model) == value)).all()
            keep &= np.isin(frame.column("leads", "lead_id"), np.array(found, np.int64))
    return keep


def is_converted(frame: Frame) -> np.ndarray:
    return frame.column("leads", "status") == frame.code("status", "converted")


def float_or_none(value) -> float | None:
    return None if np.isnan(value) else float(value)


def outcome_row(key, leads: int, converted: int, response_median) -> dict:
    return {"key": key, "leads": int(leads), "converted": int(converted),
            "conversion": round(converted / leads, 4) if leads else 0.0, "first_response_median": response_median}


def channels(session, query: Query, by: str) -> list[dict]:
    """One row per value of ``by`` (a source field, ``channel``, ``click_id``, ``class``),
    most leads first."""
    if by not in DIMENSIONS:
        raise ReportError("by", f"one of {', '.join(DIMENSIONS)}")
    frame = load_leads(session, query, [by], "status", "response")
    keep = passing(session, frame, query)
    codes, family = dimension(frame, by, query.model)
    groups = Groups(codes[keep], len(frame.values(family)))
    leads, converted = groups.count(), groups.count(is_converted(frame)[keep])
    middle = groups.median(frame.column("leads", "response")[keep])
    values = frame.values(family)
    rows = [outcome_row(values[code], leads[code], converted[code], float_or_none(middle[code]))
            for code in np.flatnonzero(leads)]
    return sorted(rows, key=lambda row: (-row["leads"], row["key"] is None, str(row["key"])))  # "none" last


def managers(session, query: Query) -> list[dict]:
    """Per assignee: leads, first response (median, 90th percentile), SLA breaches (leads that
    were escalated), escalations, callbacks made (callback tasks closed), conversion."""
    frame = load_leads(session, query, ["assignee"], "status", "response", "escalations",
                       parts={"callbacks": {"assignee"}})
    keep = passing(session, frame, query) & (frame.column("leads", "assignee") != 0)
    assignees = frame.column("leads", "assignee")[keep]
    size = len(frame.values("assignee"))
    groups = Groups(assignees, size)
    responses, escalations = frame.column("leads", "response")[keep], frame.column("leads", "escalations")[keep]
    leads, converted, count, breaches = (groups.count(), groups.count(is_converted(frame)[keep]),
                                         groups.count(escalations), groups.count(escalations > 0))
    middle, p90 = groups.median(responses), groups.percentile(responses, 90)
    assigned = frame.column("leads", "lead_id")[keep]
    made = np.isin(frame.column("callbacks", "lead_id"), assigned)
    callbacks = np.bincount(frame.column("callbacks", "assignee")[made], minlength=size)
    names = frame.values("assignee")
    rows = [outcome_row(names[code], leads[code], converted[code], float_or_none(middle[code]))
            | {"first_response_p90": float_or_none(p90[code]), "sla_breaches": int(breaches[code]),
               "escalations": int(count[code]), "callbacks": int(callbacks[code])}
            for code in np.flatnonzero(leads)]
    return sorted(rows, key=lambda row: row["key"])


def timeseries(session, query: Query) -> dict:
    """Leads per day (in the team's zone) by channel, every day of the period, zeros included."""
    days = [query.since + timedelta(days=n) for n in range((query.until - query.since).days + 1)]
    frame = load_leads(session, query, ["channel"])
    keep = passing(session, frame, query)
    midnights = np.array([micros(datetime.combine(day, time.min, query.zone)) for day in days], np.int64)
    day = np.searchsorted(midnights, frame.column("leads", "created")[keep], side="right") - 1
    channel, names = frame.column("leads", "channel")[keep], frame.values("channel")
    counts = np.bincount(channel * len(days) + day, minlength=len(names) * len(days)).reshape(len(names), len(days))
    found = sorted((names[code], code) for code in np.flatnonzero(counts.sum(axis=1)))
    return {"days": [day.isoformat() for day in days],
            "series": {name: [int(count) for count in counts[code]] for name, code in found}}


def scores(session, query: Query) -> dict:
    """Per class (and unscored leads): leads, conversion, the value of all of them, and for the
    open ones the expected value (Σ value × probability) and the value lost from maximum
    (Σ value × (1 − probability)); then the open leads losing the most."""
    frame = load_leads(session, query, ["class", "assignee"], "status", "response", "value", "probability")
    keep = passing(session, frame, query)
    column = {name: frame.column("leads", name)[keep]
              for name in ("lead_id", "class", "status", "response", "value", "probability", "assignee")}
    status = column["status"]
    is_open = np.isin(status, [frame.code("status", name) for name in OPEN])
    estimated = is_open & ~np.isnan(column["value"]) & ~np.isnan(column["probability"])
    lost = np.where(estimated, column["value"] * (1 - column["probability"]), 0.0)
    groups = Groups(column["class"], len(frame.values("class")))
    leads, converted = groups.count(), groups.count(is_converted(frame)[keep])
    middle = groups.median(column["response"])
    sums = {"open": groups.count(is_open), "value": groups.total(np.nan_to_num(column["value"])),
            "expected": groups.total(np.where(estimated, column["value"] * column["probability"], 0.0)),
            "value_lost": groups.total(lost), "unestimated": groups.count(is_open & ~estimated)}
    rows = []
    for key in CLASSES:
        code = frame.code("class", key)
        if code >= 0 and leads[code]:
            rows.append(outcome_row(key, leads[code], converted[code], float_or_none(middle[code]))
                        | {name: int(values[code]) if name in ("open", "unestimated") else round(float(values[code]), 2)
                           for name, values in sums.items()})
    return {"rows": rows, "at_risk": at_risk(session, frame, column, estimated, lost)}


def at_risk(session, frame: Frame, column: dict, estimated: np.ndarray, lost: np.ndarray) -> list[dict]:
    chosen = np.flatnonzero(estimated)
    chosen = chosen[np.lexsort((column["lead_id"][chosen], -lost[chosen]))][:AT_RISK]
    numbers = [int(number) for number in column["lead_id"][chosen]]
    names = dict(session.execute(select(Lead.id, Lead.name).where(Lead.id.in_(numbers))).all()) if numbers else {}
    classes, statuses, assignees = (frame.values(family) for family in ("class", "status", "assignee"))
    return [{"number": number, "name": names.get(number), "class": classes[column["class"][index]],
             "status": statuses[column["status"][index]], "assignee": assignees[column["assignee"][index]],
             "value": float(column["value"][index]), "probability": float(column["probability"][index]),
             "value_lost": round(float(lost[index]), 2)} for number, index in zip(numbers, chosen, strict=True)]


class Groups:
    """Figures per group of rows, the groups given as codes 0 … size − 1."""

    def __init__(self, codes: np.ndarray, size: int):
        self.codes, self.size = codes, size

    def count(self, where: np.ndarray | None = None) -> np.ndarray:
        """Rows per group; with ``where`` (flags or counts), their sum."""
        weights = None if where is None else where.astype(np.float64)
        return np.bincount(self.codes, weights, minlength=self.size).astype(np.int64)

    def total(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.codes, values, minlength=self.size)

    def median(self, values: np.ndarray) -> np.ndarray:
        """The middle value per group (the mean of the two middle ones), NaN values left out;
        NaN for a group with none."""
        ordered, starts, counts = self.ranked(values)
        found = counts > 0
        low, high = (starts + (counts - 1) // 2)[found], (starts + counts // 2)[found]
        middle = np.full(self.size, np.nan)
        middle[found] = (ordered[low] + ordered[high]) / 2
        return middle

    def percentile(self, values: np.ndarray, share: int) -> np.ndarray:
        """The nearest-rank percentile per group (see ``percentile``): the value at rank
        ceil(share × n / 100), in integers so no rounding moves it."""
        ordered, starts, counts = self.ranked(values)
        found = counts > 0
        result = np.full(self.size, np.nan)
        result[found] = ordered[(starts + (counts * share + 99) // 100 - 1)[found]]
        return result

    def ranked(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The values sorted by group and then value, where each group starts, and its size."""
        present = ~np.isnan(values)
        codes, values = self.codes[present], values[present]
        by_value = np.argsort(values)
        # then a stable sort by group: a radix sort when the codes fit 16 bits
        narrow = codes[by_value].astype(np.int16 if self.size < 2 ** 15 else np.int32)
        ordered = values[by_value][np.argsort(narrow, kind="stable")]
        counts = np.bincount(codes, minlength=self.size)
        return ordered, np.cumsum(counts) - counts, counts
