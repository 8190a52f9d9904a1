"""The intake journal (SQLite): the file the intake commits to, so that an intake request never
waits for the pipeline.

SQLite lets one writer at a time into a database file. With the intake and the pipeline
writing the same file, every intake commit queued behind the batch in progress, and intake
latency grew to the length of a batch. So on SQLite the intake commits each delivery to a file
of its own beside the database (``hub.intake.db`` beside ``hub.db``), and the only other
writer of that file is the filing: ``file`` copies what is there into ``raw_events`` (one
INSERT ... SELECT in the database's write transaction) and then deletes it from the journal.
The pipeline files before each batch, the CRM read-back before its run, the scheduler on
every sweep; an event looked up by its id while still in the journal is filed first.

Nothing is lost on the way: a row leaves the journal only after the transaction that copied
it into ``raw_events`` committed, and a filing interrupted in between is repeated, the copy of
an event already filed (its ``event_id``) skipped. Repeated deliveries are checked against
both files by the intake's one statement, on a connection that sees the database as
``store``, while the intake holds the journal's writer lock: a filing's delete waits for that
lock and comes after its copy committed, so a row is always in one file or the other.

On PostgreSQL there is no journal: its writers do not queue behind each other, and the intake
commits to ``raw_events`` itself.
"""
from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    Table,
    bindparam,
    column,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy import table as table_clause
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex, CreateTable

from hub.store.models import RawEvent
from hub.store.sqlite import WriterLock, sqlite_engine

STORE = "store"  # the database, as a journal connection sees it
FILE_LIMIT = 5000  # rows a filing copies in one write transaction of the database
# The columns of raw_events the intake sets; the others keep their defaults until processed.
INTAKE_COLUMNS = ("event_id", "channel", "kind", "provider", "endpoint", "delivery_key", "fingerprint",
                  "method", "url", "subpath", "query", "body", "headers", "remote_addr", "received_at",
                  "attempts", "status", "error")


def intake_column(name: str) -> Column:
    stored = RawEvent.__table__.c[name]
    return Column(name, stored.type, nullable=stored.nullable)


journal_table = Table(
    "intake_events", MetaData(),
    Column("id", Integer, primary_key=True),  # AUTOINCREMENT: an id is never given twice
    *(intake_column(name) for name in INTAKE_COLUMNS),
    # Only what the intake's duplicate check reads. No index on event_id: every commit of the
    # intake wrote a page of it at random (the ids are random), a twentieth of a post's time,
    # and only a look-up of an event not filed yet reads it (``holds``), in a journal that holds
    # seconds of deliveries. An id stays unique in raw_events, whose index the filing meets.
    Index("ix_intake_events_delivery_key", "delivery_key"),
    Index("ix_intake_events_fingerprint", "fingerprint", "received_at"),
    sqlite_autoincrement=True,
)
# raw_events seen from a journal connection (a plain table clause: no keys or indexes to create)
stored_table = table_clause("raw_events", *(column(c.name, c.type) for c in RawEvent.__table__.c), schema=STORE)


def journal_path(database_path: str) -> str:
    path = Path(database_path)
    return str(path.with_name(f"{path.stem}.intake{path.suffix}"))


class IntakeJournal:
    """Quacks like ``Database`` where the intake's committers use one (``engine``,
    ``writer_lock``, ``writer``, ``write_connection``). ``store_lock`` is the database's own
    writer lock, so that a thread's filing and its other writes share one descriptor."""

    def __init__(self, database_path: str, store_lock: WriterLock):
        self.path = journal_path(database_path)
        self.writer_lock, self.store_lock = WriterLock(self.path), store_lock
        self.engine = sqlite_engine(f"sqlite:///{self.path}", attach={STORE: database_path},
                                    on_connect=ensure_schema)

    def writer(self) -> Connection:
        """A connection kept open across many transactions, by a caller that takes the
        writer lock itself (the group committer). Transactions here begin deferred, with a
        write: an IMMEDIATE one would take the database's writer lock too."""
        return self.engine.connect()

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        with self.writer_lock.held(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as connection, connection.begin():
            yield connection

    def file(self, limit: int = FILE_LIMIT) -> int:
        """Copy up to ``limit`` rows, oldest first, into raw_events, then delete them here;
        how many were filed. Takes the database's writer lock itself: never call it inside a
        write (``Database.write``), whose lock it would release."""
        with self.read() as connection:
            last = connection.execute(last_of_first(), {"limit": limit}).scalar()
        if last is None:
            return 0
        with self.engine.connect() as connection:
            with self.store_lock.held(), connection.begin():
                connection.execute(copy_into_store(), {"last": last})
            with self.writer_lock.held(), connection.begin():
                return connection.execute(delete(journal_table).where(journal_table.c.id <= last)).rowcount

    def holds(self, event_id: str) -> bool:
        """Whether the event is here, not filed yet (a scan: see the table's indexes)."""
        with self.read() as connection:
            found = connection.execute(select(journal_table.c.id).where(journal_table.c.event_id == event_id))
            return found.first() is not None

    def backlog(self) -> int:
        """Rows not filed yet."""
        with self.read() as connection:
            return connection.execute(select(func.count()).select_from(journal_table)).scalar_one()

    def dispose(self) -> None:
        self.engine.dispose()


@functools.cache
def last_of_first():
    """The id of the last of the first ``limit`` rows."""
    first = select(journal_table.c.id).order_by(journal_table.c.id).limit(bindparam("limit", type_=Integer)).subquery()
    return select(func.max(first.c.id))


@functools.cache
def copy_into_store():
    names = list(INTAKE_COLUMNS)
    journal = journal_table.c
    rows = select(*(journal[name] for name in names)).where(journal.id <= bindparam("last", type_=Integer))
    rows = rows.order_by(journal.id)
    # OR IGNORE: an event a filing interrupted before its delete copied already
    return insert(stored_table).from_select(names, rows).prefix_with("OR IGNORE")


def ensure_schema(dbapi_connection) -> None:
    """Create the journal's table; after an upgrade that changed its columns, file the rows
    of the old one (the columns both have) and make it anew, in one transaction. An index an
    earlier version made and this one does not is dropped."""
    expected = [c.name for c in journal_table.c]
    if table_columns(dbapi_connection) == expected and not obsolete_indexes(dbapi_connection):
        return
    dbapi_connection.execute("BEGIN IMMEDIATE")
    try:
        found = table_columns(dbapi_connection)
        for name in obsolete_indexes(dbapi_connection):
            dbapi_connection.execute(f'DROP INDEX "{name}"')  # a name of ours, read from the file
        if found and found != expected:
            shared = ", ".join(name for name in INTAKE_COLUMNS if name in found)
            if shared:
                dbapi_connection.execute(f"INSERT OR IGNORE INTO {STORE}.raw_events ({shared}) "
                                         f"SELECT {shared} FROM intake_events ORDER BY id")
            dbapi_connection.execute("DROP TABLE intake_events")
        if found != expected:
            for ddl in (CreateTable(journal_table), *(CreateIndex(index) for index in journal_table.indexes)):
                dbapi_connection.execute(str(ddl.compile(dialect=sqlite.dialect())))
        dbapi_connection.execute("COMMIT")
    except BaseException:
        dbapi_connection.execute("ROLLBACK")
        raise


def obsolete_indexes(dbapi_connection) -> list[str]:
    """Indexes of the journal's table that this version does not make (SQLite's own, for a
    unique column, are not named ``ix_``)."""
    wanted = {index.name for index in journal_table.indexes}
    found = [row[1] for row in dbapi_connection.execute("PRAGMA main.index_list(intake_events)")]
    return [name for name in found if name.startswith("ix_") and name not in wanted]


def table_columns(dbapi_connection) -> list[str]:
    return [row[1] for row in dbapi_connection.execute("PRAGMA main.table_info(intake_events)")]


def find_event(db, session: Session, event_id: str) -> RawEvent | None:
    """The stored event ``event_id``; one still in the journal is filed first."""
    query = select(RawEvent).where(RawEvent.event_id == event_id)
    raw = session.scalar(query)
    if raw is None and db.journal is not None and db.journal.holds(event_id):
        db.journal.file()
        session.rollback()  # a fresh snapshot, with the rows just filed
        raw = session.scalar(query)
    return raw
