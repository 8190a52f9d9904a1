"""Rows written once per transaction, one INSERT per table.

Most rows the pipeline and the timed rules make (history, assignments, tasks, timers,
notifications, sync deliveries) are written and never read back in the same transaction.
Collecting them and inserting each table's rows in one statement keeps a batch of thousands of
leads from paying the ORM's per-object cost. ``add`` returns a ``Ref`` whose ``id`` is known
after ``flush``; a row may name another row of the batch by its ``Ref`` (a timer its task).
"""
from __future__ import annotations

import functools
from collections import defaultdict

from sqlalchemy import Connection, Table, func, insert, select
from sqlalchemy.orm import Session

from hub.store.models import Assignment, LeadHistory, Notification, SyncDelivery, Task, Timer
from hub.store.prepared import insert_rows, runs_of_columns

ORDER = (Task, Assignment, LeadHistory, Timer, Notification, SyncDelivery)  # referenced rows first


class Ref:
    __slots__ = ("id",)

    def __init__(self):
        self.id: int | None = None


class RowWriter:
    def __init__(self, session: Session):
        self.session = session
        self.rows: dict[type, list[tuple[Ref, dict]]] = defaultdict(list)

    def add(self, model: type, **values) -> Ref:
        ref = Ref()
        self.rows[model].append((ref, values))
        return ref

    def pending(self, model: type) -> list[dict]:
        return [values for _, values in self.rows.get(model, [])]

    def flush(self) -> None:
        for model in ORDER:
            items = self.rows.pop(model, [])
            if not items:
                continue
            rows = [{key: value.id if isinstance(value, Ref) else value for key, value in values.items()}
                    for _, values in items]
            table = model.__table__  # Core executemany: no ORM bookkeeping for write-only rows
            connection = self.session.connection()
            if model is Task:  # other rows refer to tasks: learn their ids
                for (ref, _), task_id in zip(items, insert_with_ids(connection, table, rows), strict=True):
                    ref.id = task_id
            else:
                insert_rows(connection, table, rows)


def insert_with_ids(connection: Connection, table: Table, rows: list[dict]) -> list[int]:
    """Insert ``rows`` in one statement and return their new ids, in order.

    PostgreSQL numbers the rows of an ordered ``INSERT ... RETURNING``. SQLite cannot, so
    SQLAlchemy would fall back to one INSERT per row; but SQLite documents that a row
    inserted without an id gets one more than the largest id in the table, and a write
    transaction there has the database to itself, so the rows get the next ids in order.
    """
    if not rows:
        return []
    if connection.dialect.name != "sqlite":
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return [row_id for _, run in runs_of_columns(rows) for row_id in connection.execute(statement, run).scalars()]
    largest = largest_id(table)
    before = connection.execute(largest).scalar_one()
    insert_rows(connection, table, rows)
    after = connection.execute(largest).scalar_one()
    if after != before + len(rows):  # only at the largest possible id, where SQLite picks at random
        raise RuntimeError(f"{table.name}: ids of the inserted rows are not {before + 1}..{before + len(rows)}")
    return list(range(before + 1, after + 1))


# Statements built once per table (and dialect): building one costs more than running it
# on a batch of a few rows.
@functools.cache
def largest_id(table: Table):
    return select(func.coalesce(func.max(table.c.id), 0))


@functools.cache
def insert_unless_there(dialect_name: str, table: Table):
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table).on_conflict_do_nothing()


def insert_missing(connection: Connection, table: Table, rows: list[dict]) -> None:
    """Insert the rows whose primary key is not there yet (another writer may add them too)."""
    if rows:
        connection.execute(insert_unless_there(connection.dialect.name, table), rows)
