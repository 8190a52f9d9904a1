"""Engine and sessions. SQLite (WAL, one writer at a time) by default, PostgreSQL in production."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from hub.store.encoding import deserialize_json, serialize_json
from hub.store.journal import IntakeJournal
from hub.store.sqlite import BackgroundCheckpoints, WriterLock, no_autocheckpoint, no_lock, sqlite_engine

DEFAULT_URL = "sqlite:///instance/hub.db"


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_URL


def make_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    if url.startswith("sqlite"):
        return sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, json_serializer=serialize_json,
                         json_deserializer=deserialize_json)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class Database:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._reader = sessionmaker(engine, expire_on_commit=False)
        self._write_engine = engine.execution_options(write=True)
        self._writer = sessionmaker(self._write_engine, expire_on_commit=False)
        path = engine.url.database if is_sqlite(engine) else None
        self.writer_lock = WriterLock(path) if path and path != ":memory:" else None
        self._lock = self.writer_lock.held if self.writer_lock else no_lock
        # SQLite: the intake commits to a file of its own (see hub.store.journal)
        self.journal = IntakeJournal(path, self.writer_lock) if self.writer_lock else None
        self.checkpoints: BackgroundCheckpoints | None = None

    @property
    def intake(self) -> Database | IntakeJournal:
        """Where the intake commits what arrives: the journal on SQLite, else the database."""
        return self.journal or self

    def file_intake(self) -> int:
        """Events waiting in the journal filed into raw_events (on SQLite); how many."""
        return self.journal.file() if self.journal else 0

    def checkpoint_in_background(self, every: float = 1.0) -> None:
        """For a long-running process on SQLite: checkpoints off the commit path (see
        ``BackgroundCheckpoints``). Nothing to do on PostgreSQL or an in-memory database."""
        if self.writer_lock is None or self.checkpoints is not None:
            return
        engines = (self.engine, self.journal.engine)
        for engine in engines:
            event.listen(engine, "connect", no_autocheckpoint)
            engine.dispose()  # connections opened before this get the setting too
        self.checkpoints = BackgroundCheckpoints([engine.url.database for engine in engines], every)
        self.checkpoints.thread.start()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one transaction, committed on success, rolled back on error."""
        with self._lock(), self._writer() as session, session.begin():
            yield session

    def writer(self) -> Connection:
        """A bare connection whose transactions are write transactions, for a caller that keeps
        it open across many (the intake's group committer) and takes the writer lock itself."""
        return self._write_engine.connect()

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A bare connection in one write transaction, for the hot intake path."""
        with self._lock(), self._write_engine.begin() as connection:
            yield connection

    def dispose(self) -> None:
        if self.checkpoints is not None:
            self.checkpoints.stop()
            self.checkpoints = None
        if self.journal is not None:
            self.journal.dispose()
        self.engine.dispose()
