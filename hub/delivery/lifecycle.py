"""One lifecycle for every row the hub delivers from (notifications, CRM pushes).

A due row is claimed (in flight, attempts + 1) in one transaction, handed over outside any
transaction, and its outcome recorded in another: done, ``failed`` with its retry time, or
``dead``. A row left in flight past its timeout belongs to a worker that died: it is *stuck*,
and what happens to it is the table's own decision. Dead rows go back in line by replay.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update

from connectors.base import Ambiguous, SendError
from hub.retry import RetryPolicy
from hub.store.models import DeliveryStatus

DUE = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)


@dataclass(frozen=True)
class Lifecycle:
    model: type          # a table with status, attempts, last_error, next_attempt_at
    in_flight: DeliveryStatus
    section: str         # the config section with the retry policy

    def policy(self, hub) -> RetryPolicy:
        return RetryPolicy.of(hub.config[self.section])

    def claim_due(self, hub, limit: int, prepare=None) -> list:
        """``prepare(row)`` runs on each claimed row inside the claiming transaction."""
        now, row = hub.now(), self.model
        with hub.db.write() as session:
            query = (select(row).where(row.status.in_(DUE), row.next_attempt_at <= now)
                     .order_by(row.next_attempt_at, row.id).limit(limit))
            if session.bind.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = list(session.scalars(query))
            for claimed in rows:
                claimed.status, claimed.attempts = self.in_flight, claimed.attempts + 1
                claimed.next_attempt_at = now
                if prepare:
                    prepare(claimed)
            return rows

    def after_failure(self, hub, attempts: int, error: SendError) -> dict:
        """The row's next values after a failed attempt."""
        policy = self.policy(hub)
        if isinstance(error, Ambiguous):
            status = DeliveryStatus.UNKNOWN
        else:
            status = DeliveryStatus.DEAD if error.permanent or policy.exhausted(attempts) else DeliveryStatus.FAILED
        values = {"status": status, "last_error": error.message[:2000]}
        if status == DeliveryStatus.FAILED:
            values["next_attempt_at"] = hub.now() + policy.delay(attempts, error.retry_after)
        return values

    def record(self, hub, row_id: int, **values) -> None:
        with hub.db.write() as session:
            session.execute(update(self.model).where(self.model.id == row_id).values(**values))

    def stuck(self, hub, timeout: timedelta) -> tuple:
        """Where-clauses of rows in flight for longer than ``timeout``."""
        return (self.model.status == self.in_flight, self.model.next_attempt_at < hub.now() - timeout)

    def due_count(self, hub) -> int:
        row = self.model
        with hub.db.read() as session:
            return session.scalar(select(func.count()).select_from(row).where(
                row.status.in_(DUE), row.next_attempt_at <= hub.now())) or 0

    def replay(self, hub, statuses=(DeliveryStatus.DEAD,), *where) -> int:
        """Put rows with these statuses back in line, attempts counted afresh."""
        with hub.db.write() as session:
            return session.execute(update(self.model).where(self.model.status.in_(statuses), *where)
                                   .values(status=DeliveryStatus.PENDING, attempts=0,
                                           next_attempt_at=hub.now())).rowcount
