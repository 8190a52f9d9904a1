"""SQLite's side of the store: the engine's settings, the writer lock that queues its writers,
and checkpoints off the commit path."""
from __future__ import annotations

import asyncio
import fcntl
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from hub.store.encoding import deserialize_json, serialize_json

log = logging.getLogger("hub.db")


def sqlite_engine(url: str, attach: dict[str, str] | None = None,
                  on_connect: Callable | None = None) -> Engine:
    """``attach``: other database files every connection sees, by schema name; ``on_connect``:
    called with each new connection once it is set up."""
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=serialize_json,
                           json_deserializer=deserialize_json)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        for schema, attached in (attach or {}).items():
            cursor.execute(f"ATTACH DATABASE ? AS {schema}", (attached,))  # the schema is a name of ours
            cursor.execute(f"PRAGMA {schema}.synchronous=NORMAL")
        cursor.close()
        # SQLite's lower() folds ASCII only; searches by name need Cyrillic folded too
        dbapi_connection.create_function("casefold", 1, casefold, deterministic=True)
        if on_connect is not None:
            on_connect(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        # A deferred transaction that reads and then writes fails at once (SQLITE_BUSY, no
        # waiting) when another writer committed meanwhile; IMMEDIATE waits for the lock (of
        # every attached file too: a writer that reads another file begins with its write).
        immediate = connection.get_execution_options().get("write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def casefold(value):
    return value.casefold() if isinstance(value, str) else value


class WriterLock:
    """SQLite admits one writer; a second one waits in SQLite's busy handler, which sleeps in
    steps of milliseconds. Queueing writers on a file lock instead wakes the next one the
    moment the lock is free. One descriptor per thread: flock orders threads too.

    A writer that has to wait says so while it waits, by a shared lock on a second file (the
    queue), so that the pipeline, which takes the lock batch after batch, can let every writer
    waiting at the end of a batch in first (``let_waiting_writers_in``): otherwise the
    pipeline, already running, usually takes the lock again before a woken waiter is even
    scheduled, and an intake request waits for several batches instead of one."""

    def __init__(self, database_path: str):
        self.path = f"{database_path}.writer-lock"
        self.queue_path = f"{database_path}.writer-queue"
        self.local = threading.local()

    def handle(self):
        return self.thread_file("handle", self.path)

    def queue_handle(self):
        return self.thread_file("queue", self.queue_path)

    def thread_file(self, name: str, path: str):
        """This thread's own descriptor of ``path``, opened once and held for the thread's life."""
        handle = getattr(self.local, name, None)
        if handle is None:
            handle = open(path, "a+b")  # noqa: SIM115 - held for the thread's life
            setattr(self.local, name, handle)
        return handle

    def take_now(self) -> bool:
        try:
            fcntl.flock(self.handle(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    @contextmanager
    def held(self) -> Iterator[None]:
        if not self.take_now():
            queued_flock(self.handle(), self.queue_handle())
        try:
            yield
        finally:
            self.release()

    async def acquire(self, wait_in_thread) -> None:
        """Take the lock for this thread without blocking its event loop: at once when free,
        else another thread (``wait_in_thread(function)``, awaitable) waits for it on this
        thread's own handle. A lock belongs to the open file, not to a thread, so this thread
        holds it the moment it is granted: no gap in which a writer that just let it go (the
        pipeline, between two batches) takes it again. And a request run on this thread that
        takes the lock the blocking way meanwhile, on the same handle, is never kept waiting by
        its own thread's hold. ``release`` gives it up."""
        if self.take_now():
            return
        handle, queue = self.handle(), self.queue_handle()
        waiting = wait_in_thread(functools.partial(queued_flock, handle, queue))
        try:
            await waiting
        except BaseException:  # given up (cancelled): let the lock go once the wait ends
            asyncio.ensure_future(waiting).add_done_callback(lambda _: self.release())
            raise

    def release(self) -> None:
        fcntl.flock(self.handle(), fcntl.LOCK_UN)

    def let_waiting_writers_in(self, at_most: float, step: float = 0.0005) -> bool:
        """Pause (for at most ``at_most`` seconds) while another writer waits for the lock:
        for a writer that keeps taking it, between two of its transactions. Whether one waited."""
        queue = self.queue_handle()
        deadline, waited = time.monotonic() + at_most, False
        while True:
            try:
                fcntl.flock(queue, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                waited = True
                if time.monotonic() >= deadline:
                    return waited
                time.sleep(step)
            else:
                fcntl.flock(queue, fcntl.LOCK_UN)
                return waited


def queued_flock(handle, queue) -> None:
    """Block until ``handle`` holds the writer lock, in the queue (``queue``) meanwhile."""
    fcntl.flock(queue, fcntl.LOCK_SH)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
    finally:
        fcntl.flock(queue, fcntl.LOCK_UN)


@contextmanager
def no_lock() -> Iterator[None]:
    yield


class BackgroundCheckpoints:
    """SQLite copies its write-ahead log back into the database file (a checkpoint, with an
    fsync) after the commit that grows the log past 1,000 pages, in the committing connection,
    while that writer still holds the writer lock: every intake request then waits tens of
    milliseconds for a disk flush. A long-running process turns that off for its connections
    and checkpoints from a thread of its own instead; a PASSIVE checkpoint takes no writer lock,
    and the thread holds no interpreter lock while SQLite works."""

    def __init__(self, paths: list[str], every: float):
        self.paths, self.every = paths, every
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, name="hub-wal-checkpoints", daemon=True)

    def run(self) -> None:
        connections: dict[str, sqlite3.Connection | None] = {}
        while not self.stopped.wait(self.every):
            for path in self.paths:
                connections[path] = checkpoint(path, connections.get(path))
        for connection in connections.values():
            if connection is not None:
                connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)


def checkpoint(path: str, connection: sqlite3.Connection | None) -> sqlite3.Connection | None:
    """One PASSIVE checkpoint of ``path``; the connection for the next (none after an error:
    the next turn tries again on a fresh one)."""
    try:
        connection = connection or sqlite3.connect(path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return connection
    except sqlite3.Error as error:
        log.warning("WAL checkpoint of %s failed: %s", path, error)
        if connection is not None:
            connection.close()
        return None


def no_autocheckpoint(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
