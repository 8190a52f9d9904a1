"""Rows written once per transaction, one INSERT per table.

Most rows the pipeline and the timed rules make (history, assignments, tasks, timers,
notifications, sync deliveries) are written and never read back in the same transaction.
Collecting them and inserting each table's rows in one statement keeps a batch of thousands of
leads from paying the ORM's per-object cost. ``add`` returns a ``Ref`` whose ``id`` is known
after ``flush``; a row may name another row of the batch by its ``Ref`` (a timer its task).
"""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import insert
from sqlalchemy.orm import Session

from hub.models import Assignment, LeadHistory, Notification, SyncDelivery, Task, Timer

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
                statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
                for (ref, _), task_id in zip(items, connection.execute(statement, rows).scalars()):
                    ref.id = task_id
            else:
                connection.execute(insert(table), rows)
