"""The leads list's query: filters, search, sorting and a keyset cursor, read from the page's
query string. Every filter narrows an indexed column or the newest-first scan, so a page costs
the same at a million leads as at a hundred."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select, tuple_

from hub.mapping import SOURCE_KEYS, InvalidValue, normalise_phone
from hub.store.models import Lead

STATUSES = ("new", "in_progress", "converted", "junk", "archived")
CHANNELS = ("form", "mail", "call", "sms")
CLASSES = ("A", "B", "C")
SORTS = {"-number": (Lead.id, True), "number": (Lead.id, False),
         "-updated": (Lead.updated_at, True), "updated": (Lead.updated_at, False)}
PAGE = 50
UNASSIGNED = "-"


@dataclass
class Page:
    leads: list[Lead]
    next_cursor: str | None


def search_condition(q: str, region: str, dialect: str):
    """A lead number, a phone in any format, an e-mail, or a part of the name."""
    q = q.strip()
    if q.lstrip("№#").isdigit() and len(q.lstrip("№#")) < 7:
        return Lead.id == int(q.lstrip("№#"))
    if "@" in q:
        return Lead.email == q.lower()
    if sum(c.isdigit() for c in q) >= 7:
        try:
            return Lead.phone == normalise_phone(q, region)
        except InvalidValue:
            pass
    fold = func.casefold if dialect == "sqlite" else func.lower  # SQLite's lower() is ASCII-only
    return fold(Lead.name).contains(q.casefold(), autoescape=True)


def day_start(text: str, zone: ZoneInfo) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(text), time.min, zone)
    except ValueError:
        return None


def filters(args, config, dialect: str) -> list:
    zone = ZoneInfo(config["timezone"])
    found = []
    if args.get("status") in STATUSES:
        found.append(Lead.status == args["status"])
    if args.get("channel") in CHANNELS:
        found.append(Lead.channel == args["channel"])
    if args.get("stage"):
        found.append(Lead.stage == args["stage"])
    if args.get("class") in CLASSES:
        found.append(Lead.score_class == args["class"])
    if args.get("assignee"):
        unassigned = args["assignee"] == UNASSIGNED
        found.append(Lead.assignee_id.is_(None) if unassigned else Lead.assignee_id == args["assignee"])
    wanted = {key: args[key] for key in SOURCE_KEYS if args.get(key)}
    if args.get("source_key") in SOURCE_KEYS and args.get("source_value"):
        wanted[args["source_key"]] = args["source_value"]
    found += [Lead.source[key].as_string() == value for key, value in wanted.items()]
    since, until = day_start(args.get("from", ""), zone), day_start(args.get("to", ""), zone)
    if since:
        found.append(Lead.created_at >= since)
    if until:
        found.append(Lead.created_at < until + timedelta(days=1))
    if args.get("q", "").strip():
        found.append(search_condition(args["q"], config["region"], dialect))
    return found


def after_cursor(column, descending: bool, cursor: str):
    """Rows after the cursor ``<sort value>|<id>`` in the page's order."""
    value, _, last_id = cursor.rpartition("|")
    if column is Lead.id:
        return Lead.id < int(last_id) if descending else Lead.id > int(last_id)
    moment = datetime.fromisoformat(value)
    key = tuple_(column, Lead.id)
    return key < (moment, int(last_id)) if descending else key > (moment, int(last_id))


def cursor_of(lead: Lead, column) -> str:
    value = "" if column is Lead.id else lead.updated_at.isoformat()
    return f"{value}|{lead.id}"


def query(args, config, dialect: str, only_assignee: str | None = None) -> tuple[Select, object]:
    column, descending = SORTS.get(args.get("sort"), SORTS["-number"])
    statement = select(Lead).where(*filters(args, config, dialect))
    if only_assignee:
        statement = statement.where(Lead.assignee_id == only_assignee)
    if args.get("cursor"):
        try:
            statement = statement.where(after_cursor(column, descending, args["cursor"]))
        except ValueError:
            pass  # a mangled cursor shows the first page
    order = (column.desc(), Lead.id.desc()) if descending else (column.asc(), Lead.id.asc())
    return statement.order_by(*order[: 1 if column is Lead.id else 2]), column


def fetch(session, args, config, only_assignee: str | None = None) -> Page:
    statement, column = query(args, config, session.bind.dialect.name, only_assignee)
    rows = list(session.scalars(statement.limit(PAGE + 1)))
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return Page(rows, cursor_of(rows[-1], column) if more and rows else None)


