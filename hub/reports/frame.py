"""The reports' data as columns: a period's leads, their stage stays and their callbacks as
NumPy arrays, one entry per row, so each figure is a vectorised pass over memory instead of a
sort in the database (SQLite sorts a million rows in about a second, and every median needs
one).

Text values are coded per *family* (channel, status, a source field …): code 0 is no value,
each other code one value, and both touches of a source field share its family, so an
attribution model is a choice between two code arrays.

A day (UTC, by the lead's creation) whose snapshot is current is read from
``report_snapshots`` (``hub.reports.snapshots``); every other day (today, or one changed since
its snapshot) straight from the tables. Either way a report sees the tables as they are.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import BigInteger, Integer, cast, func, select

from hub.store.models import Lead, LeadFact, LeadHistory, StageVisit, Task

TOUCH_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "form", "mailbox",
              "called_number")  # the source fields ``lead_facts`` holds for both touches
DTYPES = {"id": np.int64, "time": np.int64, "float": np.float64, "count": np.int32, "flag": np.bool_,
          "code": np.int32}


@dataclass(frozen=True)
class Column:
    kind: str  # a key of DTYPES; time: microseconds since the epoch, UTC; float: NaN for none
    sql: object  # what the tables give, in their part's query
    family: str | None = None  # the values a code column's codes stand for


def lead_columns() -> dict[str, Column]:
    touches = {f"{touch}_{key}": Column("code", getattr(LeadFact, f"{touch}_{key}"), key)
               for touch in ("first", "last") for key in TOUCH_KEYS}
    return {"lead_id": Column("id", LeadFact.lead_id), "created": Column("time", LeadFact.created_at),
            "channel": Column("code", LeadFact.channel, "channel"), "status": Column("code", LeadFact.status, "status"),
            "assignee": Column("code", LeadFact.assignee_id, "assignee"),
            "pipeline": Column("code", LeadFact.pipeline, "pipeline"), "stage": Column("code", LeadFact.stage, "stage"),
            "response": Column("float", LeadFact.response_seconds), **touches,
            "first_click": Column("flag", LeadFact.first_click), "last_click": Column("flag", LeadFact.last_click),
            "last_direct": Column("flag", LeadFact.last_direct),
            "class": Column("code", Lead.score_class, "class"), "probability": Column("float", Lead.score_probability),
            "value": Column("float", Lead.score_value), "escalations": Column("count", escalations())}


def escalations():
    """How many times the lead was escalated (an index lookup per lead)."""
    return (select(func.count()).select_from(LeadHistory)
            .where(LeadHistory.lead_id == LeadFact.lead_id, LeadHistory.action == "escalated").scalar_subquery())


PARTS = {
    "leads": lead_columns(),
    "stays": {"lead_id": Column("id", StageVisit.lead_id), "created": Column("time", StageVisit.lead_created_at),
              "pipeline": Column("code", StageVisit.pipeline, "pipeline"),
              "stage": Column("code", StageVisit.stage, "stage"), "seconds": Column("float", StageVisit.seconds)},
    "callbacks": {"lead_id": Column("id", Task.lead_id), "created": Column("time", LeadFact.created_at),
                  "assignee": Column("code", Task.assignee_id, "assignee")},
}
SCORED = {"class", "probability", "value"}  # read from the lead's own row
TIMES = {"leads": LeadFact.created_at, "stays": StageVisit.lead_created_at, "callbacks": LeadFact.created_at}
Block = dict  # column name -> (array, the values of its codes or None): one read of one part


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def epoch_micros(column, dialect: str):
    """A stored time as whole microseconds since the epoch, computed by the database: SQLite
    keeps ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC; PostgreSQL's epoch is an exact numeric."""
    if dialect == "sqlite":
        return (cast(func.strftime("%s", column), Integer) * 1_000_000
                + cast(func.coalesce(func.nullif(func.substr(column, 21, 6), ""), "0"), Integer))
    return cast(func.extract("epoch", column) * 1_000_000, BigInteger)


def encode(values) -> tuple[np.ndarray, list]:
    """Codes for ``values`` and the values the codes stand for (0: none)."""
    index = {None: 0}
    codes = np.fromiter((index.setdefault(value, len(index)) for value in values), np.int32, len(values))
    return codes, list(index)


def as_array(kind: str, values: list) -> np.ndarray:
    """A float column's ``None`` becomes NaN."""
    return np.array(values, dtype=DTYPES[kind]) if values else np.empty(0, DTYPES[kind])


def read_tables(session, part: str, names, start: datetime, end: datetime) -> Block:
    """The rows of ``part`` whose lead was created in [start, end), straight from the tables."""
    columns, dialect = PARTS[part], session.get_bind().dialect.name
    selected = list(dict.fromkeys(["lead_id", *names]))
    sql = [epoch_micros(columns[name].sql, dialect) if columns[name].kind == "time" else columns[name].sql
           for name in selected]
    statement = select(*sql).where(TIMES[part] >= start, TIMES[part] < end)
    if part == "stays":  # the funnel reads a lead's stays as one run, by pipeline and stage
        statement = statement.order_by(StageVisit.lead_id, StageVisit.pipeline, StageVisit.stage)
    if part == "leads" and SCORED.intersection(selected):
        statement = statement.join(Lead, Lead.id == LeadFact.lead_id)
    elif part == "callbacks":
        statement = statement.join(LeadFact, LeadFact.lead_id == Task.lead_id).where(
            Task.kind == "callback", Task.status == "done")
    rows = session.execute(statement).all()
    values = dict(zip(selected, zip(*rows, strict=True), strict=True)) if rows else {name: () for name in selected}
    block = {}
    for name in selected:
        column = columns[name]
        block[name] = encode(values[name]) if column.family else (as_array(column.kind, list(values[name])), None)
    return block


class Frame:
    """Blocks of each part joined into columns, with the codes of each family made common."""

    def __init__(self):
        self._codes: dict[str, dict] = defaultdict(lambda: {None: 0})
        self._blocks: dict[str, list[Block]] = defaultdict(list)
        self._columns: dict[tuple[str, str], np.ndarray] = {}
        self._keep: dict[str, np.ndarray] = {}

    def add(self, part: str, block: Block) -> None:
        self._blocks[part].append(block)

    def common(self, family: str, dictionary: list) -> np.ndarray:
        """Maps a block's codes onto the frame's codes of ``family``."""
        return np.fromiter((self.intern(family, value) for value in dictionary), np.int32, len(dictionary))

    def column(self, part: str, name: str) -> np.ndarray:
        """The column over the period's rows of ``part``."""
        if (part, name) not in self._columns:
            kind = PARTS[part][name].kind
            arrays = [self.common(PARTS[part][name].family, dictionary)[array] if dictionary is not None else array
                      for array, dictionary in (block[name] for block in self._blocks[part])]
            joined = np.concatenate(arrays) if arrays else np.empty(0, DTYPES[kind])
            self._columns[(part, name)] = joined[self._keep[part]] if part in self._keep else joined
        return self._columns[(part, name)]

    def keep_period(self, start: datetime, end: datetime) -> None:
        """From now on every column holds only the rows whose lead was created in [start, end)."""
        for part in list(self._blocks):
            created = self.column(part, "created")
            self._columns = {key: value for key, value in self._columns.items() if key[0] != part}
            self._keep[part] = (created >= micros(start)) & (created < micros(end))

    def code(self, family: str, value) -> int:
        """The code of ``value``; -1 (matching nothing) when no row has it."""
        return self._codes[family].get(value, -1)

    def intern(self, family: str, value) -> int:
        """The code of ``value``, given one if it has none."""
        codes = self._codes[family]
        return codes.setdefault(value, len(codes))

    def values(self, family: str) -> list:
        """Code -> value."""
        return list(self._codes[family])
