"""Report snapshots: each month's report columns (``hub.reports.frame``) built once and kept as
NumPy arrays in ``report_snapshots``, so a report over a year reads a dozen stored arrays per
column instead of a million rows.

Database triggers record every change the reports read (a lead, an escalation, a callback
task, a stage stay) as a row of ``report_changes`` naming the month of the lead's creation.
A month's snapshot is *current* while it was built in this ``FORMAT`` and no change to the
month was recorded since; reports read current months from here and all others from the tables.
The scheduler rebuilds changed months every ``REFRESH_EVERY``; `hub reports snapshot` now.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import delete, exists, func, insert, select, text

from hub.reports.frame import DTYPES, PARTS, Block, Frame, read_tables
from hub.store.models import ReportChange, ReportSnapshot

log = logging.getLogger("hub.reports")
FORMAT = 1  # raised when the columns change: every snapshot of another format is rebuilt
REFRESH_EVERY = timedelta(minutes=10)
MARK = "leads.lead_id"  # every snapshot has this column


def month_start(month: str) -> datetime:
    year, number = map(int, month.split("-"))
    return datetime(year, number, 1, tzinfo=UTC)


def following(month: str) -> str:
    start = month_start(month)
    return f"{start.year + start.month // 12:04d}-{start.month % 12 + 1:02d}"


def months_between(start: datetime, end: datetime) -> list[str]:
    """The UTC months that overlap [start, end)."""
    month, months = f"{start.astimezone(UTC):%Y-%m}", []
    while month_start(month) < end:
        months.append(month)
        month = following(month)
    return months


def current(session, months: list[str]) -> set[str]:
    """Those of ``months`` whose snapshot is current."""
    built = session.scalars(select(ReportSnapshot.month).where(
        ReportSnapshot.name == MARK, ReportSnapshot.format == FORMAT, ReportSnapshot.month.in_(months))).all()
    return {month for month in built if not session.scalar(select(exists().where(ReportChange.month == month)))}


def read(session, months: Iterable[str], wanted: dict[str, Iterable[str]]) -> list[tuple[str, Block]]:
    """(part, block) for each part of each month: the ``wanted`` columns, with lead_id and created."""
    names = [f"{part}.{name}" for part, columns in wanted.items() for name in {"lead_id", "created", *columns}]
    rows = session.execute(select(ReportSnapshot.month, ReportSnapshot.name, ReportSnapshot.data,
                                  ReportSnapshot.dictionary)
                           .where(ReportSnapshot.month.in_(list(months)), ReportSnapshot.name.in_(names)))
    blocks: dict[tuple[str, str], Block] = defaultdict(dict)
    for month, name, data, dictionary in rows:
        part, column = name.split(".", 1)
        blocks[(month, part)][column] = (np.frombuffer(data, DTYPES[PARTS[part][column].kind]), dictionary)
    return [(part, block) for (_month, part), block in sorted(blocks.items())]


def due_months(session) -> list[str]:
    changed = session.scalars(select(ReportChange.month).distinct()).all()
    stale = session.scalars(select(ReportSnapshot.month).distinct().where(ReportSnapshot.format != FORMAT)).all()
    return sorted({*changed, *stale})


def due(hub) -> bool:
    """Changes are waiting and the last build is ``REFRESH_EVERY`` old (or there is none)."""
    with hub.db.read() as session:
        if not session.scalar(select(exists().select_from(ReportChange))):
            return False
        last = session.scalar(select(func.max(ReportSnapshot.built_at)))
    return last is None or last <= hub.now() - REFRESH_EVERY


def refresh(hub) -> list[str]:
    """Builds the snapshot of every changed month; returns the months built."""
    with hub.db.read() as session:
        months = due_months(session)
    for month in months:
        build(hub, month)
    if months:
        log.info("report snapshots built: %s", ", ".join(months))
    return months


def build(hub, month: str) -> None:
    """The month's snapshot, and its recorded changes forgotten: only those the snapshot read.
    SQLite reads in one transaction and writes in a short second one (its single writer gives
    change ids in commit order, so the ids up to the last one read are exactly the changes
    read); PostgreSQL reads and writes in one repeatable-read transaction, whose delete sees
    only the changes its reads saw."""
    if hub.db.engine.dialect.name == "sqlite":
        with hub.db.read() as session:
            last, blocks = gather(session, month)
        with hub.db.write() as session:
            store(session, month, blocks, last, hub.now())
        return
    with hub.db.write() as session:
        session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        last, blocks = gather(session, month)
        store(session, month, blocks, last, hub.now())


def gather(session, month: str) -> tuple[int | None, dict[str, Block]]:
    start, end = month_start(month), month_start(following(month))
    last = session.scalar(select(func.max(ReportChange.id)).where(ReportChange.month == month))
    return last, {part: read_tables(session, part, columns, start, end) for part, columns in PARTS.items()}


def store(session, month: str, blocks: dict[str, Block], last: int | None, now: datetime) -> None:
    session.execute(delete(ReportSnapshot).where(ReportSnapshot.month == month))
    if len(blocks["leads"]["lead_id"][0]):  # a month whose leads are all gone keeps no snapshot
        session.execute(insert(ReportSnapshot), [
            {"month": month, "name": f"{part}.{name}", "format": FORMAT, "data": array.tobytes(),
             "dictionary": dictionary, "built_at": now}
            for part, block in blocks.items() for name, (array, dictionary) in block.items()])
    if last is not None:
        session.execute(delete(ReportChange).where(ReportChange.month == month, ReportChange.id <= last))


def load(session, start: datetime, end: datetime, wanted: dict[str, Iterable[str]]) -> Frame:
    """The frame of the leads created in [start, end) (and of their stays and callbacks): the
    ``wanted`` columns of each part, from current snapshots and from the tables for the rest."""
    months = months_between(start, end)
    snapshotted = current(session, months)
    frame = Frame()
    for part, block in read(session, sorted(snapshotted), wanted):
        frame.add(part, block)
    for since, until in unsnapshotted_spans(months, snapshotted):
        for part, columns in wanted.items():
            frame.add(part, read_tables(session, part, ["created", *columns], max(since, start), min(until, end)))
    frame.keep_period(start, end)
    return frame


def unsnapshotted_spans(months: list[str], snapshotted: set[str]) -> list[tuple[datetime, datetime]]:
    """The runs of consecutive months without a current snapshot, as [start, end) times."""
    spans = []
    for month in months:
        if month in snapshotted:
            continue
        since, until = month_start(month), month_start(following(month))
        if spans and spans[-1][1] == since:
            spans[-1] = (spans[-1][0], until)
        else:
            spans.append((since, until))
    return spans
