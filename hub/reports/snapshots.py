"""Report snapshots: each day's report columns (``hub.reports.frame``) built once and kept as
NumPy arrays in ``report_snapshots``, so a report over a year reads stored arrays instead of a
million rows.

Database triggers record every change the reports read (a lead, an escalation, a callback
task, a stage stay) as a row of ``report_changes`` naming the day (UTC) of the lead's creation.
A day's snapshot is *current* while it was built in this ``FORMAT`` and no change to the day
was recorded since; reports read current days from here and all others (today, a day whose
lead a manager just closed) from the tables. The scheduler rebuilds changed days every
``REFRESH_EVERY``; `hub reports snapshot` does it at once.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
from sqlalchemy import delete, exists, func, insert, select, text

from hub.reports.frame import DTYPES, PARTS, Block, Frame, read_tables
from hub.store.models import ReportChange, ReportSnapshot

log = logging.getLogger("hub.reports")
FORMAT = 1  # raised when the columns change: every snapshot of another format is rebuilt
REFRESH_EVERY = timedelta(minutes=1)
MARK = "leads.lead_id"  # every snapshot has this column


def day_start(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time.min, UTC)


def following(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def days_between(start: datetime, end: datetime) -> list[str]:
    """The UTC days that overlap [start, end)."""
    first, last = start.astimezone(UTC).date(), (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def current(session, days: list[str]) -> set[str]:
    """Those of ``days`` (consecutive) whose snapshot is current."""
    if not days:
        return set()
    within = (days[0], days[-1])
    built = session.scalars(select(ReportSnapshot.day).where(
        ReportSnapshot.name == MARK, ReportSnapshot.format == FORMAT, ReportSnapshot.day.between(*within))).all()
    changed = session.scalars(select(ReportChange.day).distinct().where(ReportChange.day.between(*within))).all()
    return set(built) - set(changed)


def read(session, days: list[str], wanted: dict[str, Iterable[str]]) -> list[tuple[str, Block]]:
    """(part, block) for each part of each of ``days`` (consecutive; only those given): the
    ``wanted`` columns, with lead_id and created."""
    if not days:
        return []
    names = [f"{part}.{name}" for part, columns in wanted.items() for name in {"lead_id", "created", *columns}]
    rows = fetch_binary(session, select(ReportSnapshot.day, ReportSnapshot.name, ReportSnapshot.data,
                                        ReportSnapshot.dictionary)
                        .where(ReportSnapshot.day.between(days[0], days[-1]), ReportSnapshot.name.in_(names)))
    chosen, blocks = set(days), defaultdict(dict)
    for day, name, data, dictionary in rows:
        if day in chosen:
            part, column = name.split(".", 1)
            blocks[(day, part)][column] = (np.frombuffer(data, DTYPES[PARTS[part][column].kind]), dictionary)
    return [(part, block) for (_day, part), block in sorted(blocks.items())]


def fetch_binary(session, statement) -> list:
    """The rows of ``statement``; from PostgreSQL in its binary format, so the arrays' bytes
    cross the wire as they are instead of as hex text twice their size."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return session.execute(statement).all()
    compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    with connection.connection.driver_connection.cursor(binary=True) as cursor:
        cursor.execute(str(compiled), compiled.params)
        return cursor.fetchall()


def due_days(session) -> list[str]:
    changed = session.scalars(select(ReportChange.day).distinct()).all()
    stale = session.scalars(select(ReportSnapshot.day).distinct().where(ReportSnapshot.format != FORMAT)).all()
    return sorted({*changed, *stale})


def due(hub) -> bool:
    """Changes are waiting and the last build is ``REFRESH_EVERY`` old (or there is none)."""
    with hub.db.read() as session:
        if not session.scalar(select(exists().select_from(ReportChange))):
            return False
        last = session.scalar(select(func.max(ReportSnapshot.built_at)))
    return last is None or last <= hub.now() - REFRESH_EVERY


def refresh(hub) -> list[str]:
    """Builds the snapshot of every changed day; returns the days built."""
    with hub.db.read() as session:
        days = due_days(session)
    for day in days:
        build(hub, day)
    if days:  # routine, every minute while leads change
        log.debug("report snapshots built: %d day(s), %s to %s", len(days), days[0], days[-1])
    return days


def build(hub, day: str) -> None:
    """The day's snapshot, and its recorded changes forgotten: only those the snapshot read.
    SQLite reads in one transaction and writes in a short second one (its single writer gives
    change ids in commit order, so the ids up to the last one read are exactly the changes
    read); PostgreSQL reads and writes in one repeatable-read transaction, whose delete sees
    only the changes its reads saw."""
    if hub.db.engine.dialect.name == "sqlite":
        with hub.db.read() as session:
            last, blocks = gather(session, day)
        with hub.db.write() as session:
            store(session, day, blocks, last, hub.now())
        return
    with hub.db.write() as session:
        session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        last, blocks = gather(session, day)
        store(session, day, blocks, last, hub.now())


def gather(session, day: str) -> tuple[int | None, dict[str, Block]]:
    start, end = day_start(day), day_start(following(day))
    last = session.scalar(select(func.max(ReportChange.id)).where(ReportChange.day == day))
    return last, {part: read_tables(session, part, columns, start, end) for part, columns in PARTS.items()}


def store(session, day: str, blocks: dict[str, Block], last: int | None, now: datetime) -> None:
    session.execute(delete(ReportSnapshot).where(ReportSnapshot.day == day))
    if len(blocks["leads"]["lead_id"][0]):  # a day whose leads are all gone keeps no snapshot
        session.execute(insert(ReportSnapshot), [
            {"day": day, "name": f"{part}.{name}", "format": FORMAT, "data": array.tobytes(),
             "dictionary": dictionary, "built_at": now}
            for part, block in blocks.items() for name, (array, dictionary) in block.items()])
    if last is not None:
        session.execute(delete(ReportChange).where(ReportChange.day == day, ReportChange.id <= last))


def load(session, start: datetime, end: datetime, wanted: dict[str, Iterable[str]]) -> Frame:
    """The frame of the leads created in [start, end) (and of their stays and callbacks): the
    ``wanted`` columns of each part, from current snapshots and from the tables for the rest."""
    days = days_between(start, end)
    snapshotted = current(session, days)
    frame = Frame()
    for part, block in read(session, sorted(snapshotted), wanted):
        frame.add(part, block)
    for since, until in unsnapshotted_spans(days, snapshotted):
        for part, columns in wanted.items():
            frame.add(part, read_tables(session, part, ["created", *columns], max(since, start), min(until, end)))
    frame.keep_period(start, end)
    return frame


def unsnapshotted_spans(days: list[str], snapshotted: set[str]) -> list[tuple[datetime, datetime]]:
    """The runs of consecutive days without a current snapshot, as [start, end) times."""
    spans = []
    for day in days:
        if day in snapshotted:
            continue
        since, until = day_start(day), day_start(following(day))
        if spans and spans[-1][1] == since:
            spans[-1] = (spans[-1][0], until)
        else:
            spans.append((since, until))
    return spans
