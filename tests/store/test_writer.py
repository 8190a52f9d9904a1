"""Rows written in bulk learn the right ids, on SQLite as on PostgreSQL."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, insert, select

from hub.store.db import Database, make_engine
from hub.store.migrate import upgrade
from hub.store.models import Lead, Task
from hub.store.writer import insert_with_ids

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def lead_rows(names: list[str]) -> list[dict]:
    return [{"name": name, "channel": "form", "source": {}, "last_source": {}, "status": "new",
             "created_at": NOW} for name in names]


def test_ids_follow_the_rows_after_gaps_and_a_deleted_last_row(database_url):
    database = Database(make_engine(database_url))
    try:
        with database.write() as session:
            connection = session.connection()
            first = insert_with_ids(connection, Lead.__table__, lead_rows(["a", "b", "c"]))
            connection.execute(delete(Lead.__table__).where(Lead.__table__.c.id.in_([first[1], first[2]])))
        with database.write() as session:
            names = [f"client {n}" for n in range(300)]
            ids = insert_with_ids(session.connection(), Lead.__table__, lead_rows(names))
            lead_id = ids[0]
            tasks = [{"lead_id": lead_id, "kind": "call", "title": f"task {n}", "status": "open",
                      "created_at": NOW} for n in range(50)]
            task_ids = insert_with_ids(session.connection(), Task.__table__, tasks)
        with database.read() as session:
            stored = dict(session.execute(select(Lead.id, Lead.name).where(Lead.id.in_(ids))).all())
            stored_tasks = dict(session.execute(select(Task.id, Task.title)).all())
        assert len(set(ids)) == 300 and [stored[i] for i in ids] == names
        assert [stored_tasks[i] for i in task_ids] == [f"task {n}" for n in range(50)]
        assert min(ids) > first[0]
        with database.write() as session:
            assert insert_with_ids(session.connection(), Task.__table__, []) == []
    finally:
        database.dispose()


def test_sqlite_refuses_ids_it_cannot_vouch_for(tmp_path):
    """At the largest possible id SQLite picks new ids at random: the insert is refused (its
    transaction rolls back) rather than handing out wrong lead numbers."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(Lead.__table__), [lead_rows(["last"])[0] | {"id": 2 ** 63 - 1}])
        with pytest.raises(RuntimeError, match="not"), engine.begin() as connection:
            insert_with_ids(connection, Lead.__table__, lead_rows(["x", "y", "z"]))
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(Lead.__table__)).scalar_one() == 1
    finally:
        engine.dispose()
