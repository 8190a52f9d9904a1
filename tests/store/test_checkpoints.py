"""SQLite's checkpoints (the write-ahead log copied back into the database file, with an fsync)
run in a thread of a long-running process, never in the commit of a writer that holds the
writer lock."""
from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import text

from hub.store.db import Database, make_engine

ROWS, ROW_BYTES = 6, 1024 * 1024  # 6 MB: past the 1,000 pages (4 MB) that start an automatic checkpoint


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "hub.db"
    db = Database(make_engine(f"sqlite:///{path}"))
    with db.write_connection() as connection:
        connection.execute(text("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)"))
    yield db, path
    db.dispose()


def write_rows(db: Database) -> None:
    for _ in range(ROWS):
        with db.write_connection() as connection:
            connection.execute(text("INSERT INTO blobs (data) VALUES (randomblob(:size))"), {"size": ROW_BYTES})


def rows_in_database_file(path) -> int:
    """What the database file itself holds, the write-ahead log ignored (read as it is on disk,
    so a checkpoint writing it meanwhile may show a torn page: counted as nothing yet)."""
    reader = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return reader.execute("SELECT count(*) FROM blobs").fetchone()[0]
    except sqlite3.DatabaseError:  # the table itself is still only in the log, or a page is torn
        return 0
    finally:
        reader.close()


def test_commits_leave_checkpoints_to_the_background_thread(database):
    db, path = database
    db.checkpoint_in_background(every=3600)
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    write_rows(db)
    assert rows_in_database_file(path) == 0


def test_the_background_thread_copies_the_log_into_the_database(database):
    db, path = database
    db.checkpoint_in_background(every=0.01)
    write_rows(db)
    copied = threading.Event()
    for _ in range(1000):  # the thread's turns come every 10 ms
        if rows_in_database_file(path) == ROWS:
            copied.set()
            break
        copied.wait(0.01)
    assert copied.is_set()


def test_without_the_thread_sqlite_checkpoints_on_commit(database):
    db, path = database
    write_rows(db)
    assert rows_in_database_file(path) > 0
