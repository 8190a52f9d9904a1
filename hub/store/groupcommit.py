"""Group commit: the writes of many concurrent requests committed in one transaction.

A request hands its write (a function of the open connection) to ``submit`` and waits for the
returned future. The committer takes every write queued at that moment, runs them in one write
transaction and commits; only then does each future get its write's result. While that
transaction is open the next writes queue up and go in the next one, so the commits per second
stay few however many requests arrive.

Nothing is acknowledged before it is committed: when the commit fails, every write of the group
gets the error, none a result. When one write itself fails (a unique key taken by another
process meanwhile), the group is rolled back and its writes are tried again one transaction
each, so only that one gets its error.

Two committers, one per kind of database:

* ``LoopCommitter`` (SQLite): on the web process's event loop. A group is a few fast local
  statements, so they run on the loop itself, with no second thread taking turns with it for
  the interpreter; only the wait for the intake journal's writer lock (another web process, or
  a filing's delete, may hold it: ``hub.store.journal``) happens in a helper thread, which
  takes the lock for the loop the moment it is free (see ``WriterLock.acquire``), and the loop
  goes on reading and checking other requests meanwhile.
* ``ThreadCommitter`` (PostgreSQL, or a caller without a loop): one thread, as each statement
  and the commit wait on the network.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy.exc import OperationalError

log = logging.getLogger("hub.groupcommit")
MAX_GROUP = 256  # writes per transaction; a longer queue is committed in several
Write = Callable[[Any], Any]


class WriteFailed(Exception):
    """One write of a group raised (not the commit): its group is retried write by write."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def run_writes(connection, writes: list[Write]) -> list:
    results = []
    for write in writes:
        try:
            results.append(write(connection))
        except OperationalError:
            raise
        except Exception as error:
            raise WriteFailed(error) from error
    return results


class Committer:
    """What both committers share: a group's outcome handed to its futures."""

    def __init__(self, db, max_group: int = MAX_GROUP):
        self.db, self.max_group = db, max_group
        self.groups = self.writes = 0  # committed so far (for tests and the curious)

    def transaction(self, writes: list[Write]) -> list:  # pragma: no cover - each committer has its own
        raise NotImplementedError

    def settle_group(self, group: list) -> None:
        """Run ``group`` ([(write, future)]) in one transaction and settle its futures."""
        settle_all(group, self.outcomes([write for write, _ in group]))

    def outcomes(self, writes: list[Write]) -> list[tuple[Any, BaseException | None]]:
        """(result, error) of each write: the group in one transaction, or (when one write
        fails) each write in a transaction of its own."""
        try:
            results = self.transaction(writes)
        except WriteFailed as failed:
            if len(writes) == 1:
                return [(None, failed.error)]
            return [outcome for write in writes for outcome in self.outcomes([write])]
        except Exception as error:  # the lock, the connection or the commit failed: no one is acknowledged
            if not isinstance(error, OperationalError):
                log.exception("a group of %d writes failed", len(writes))
            return [(None, error)] * len(writes)
        self.groups += 1
        self.writes += len(writes)
        return [(result, None) for result in results]


class ThreadCommitter(Committer):
    def __init__(self, db, max_group: int = MAX_GROUP, name: str = "hub-group-commit"):
        super().__init__(db, max_group)
        self.name = name
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.start_lock = threading.Lock()

    def submit(self, write: Write) -> Future:
        """Queue ``write(connection)``; the future holds its result once its group is committed."""
        self.start()
        future: Future = Future()
        self.queue.put((write, future))
        return future

    def start(self) -> None:
        with self.start_lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name=self.name, daemon=True)
                self.thread.start()

    def stop(self) -> None:
        with self.start_lock:
            thread, self.thread = self.thread, None
        if thread is not None:
            self.queue.put(None)
            thread.join(timeout=10)

    def run(self) -> None:
        while (group := self.take()) is not None:
            self.settle_group(group)

    def take(self) -> list | None:
        """The writes waiting now: at least one (this blocks), at most ``max_group``."""
        first = self.queue.get()
        if first is None:
            return None
        group = [first]
        while len(group) < self.max_group:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is None:  # stop after this group
                self.queue.put(None)
                break
            group.append(item)
        return group

    def transaction(self, writes: list[Write]) -> list:
        with self.db.write_connection() as connection:
            return run_writes(connection, writes)


class LoopCommitter(Committer):
    """Submitted to from the event loop's thread (the app runs there, in a greenlet); a write
    from another thread goes through the loop too."""

    def __init__(self, db, max_group: int = MAX_GROUP):
        super().__init__(db, max_group)
        self.pending: list = []
        self.draining = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.lock_waiter = ThreadPoolExecutor(1, thread_name_prefix="hub-writer-lock")
        self.connection = None  # the loop's write connection, opened by the first group

    def submit(self, write: Write):
        """An asyncio future on the loop's thread; a ``concurrent.futures.Future`` elsewhere."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            if self.loop is None or self.loop.is_closed():
                raise RuntimeError("the group committer has no event loop on this thread")
            future: Future = Future()
            self.loop.call_soon_threadsafe(self.enqueue, write, future)
            return future
        self.loop = loop
        future = loop.create_future()
        self.enqueue(write, future)
        return future

    def enqueue(self, write: Write, future) -> None:
        self.pending.append((write, future))
        if not self.draining:
            self.draining = True
            # call_soon: the requests ready in this turn of the loop submit first, and join the group
            self.loop.call_soon(lambda: self.loop.create_task(self.drain()))

    async def drain(self) -> None:
        try:
            while self.pending:
                group, self.pending = self.pending[:self.max_group], self.pending[self.max_group:]
                await self.commit(group)
        finally:
            self.draining = False
            if self.pending:  # an error above left writes behind
                self.enqueue(*self.pending.pop(0))

    async def commit(self, group: list) -> None:
        lock = self.db.writer_lock
        try:
            if lock is not None:
                await lock.acquire(self.wait_in_thread)
        except Exception as error:
            settle_all(group, [(None, error)] * len(group))
            return
        try:
            self.settle_group(group)
        finally:
            if lock is not None:
                lock.release()

    def wait_in_thread(self, function):
        return asyncio.get_running_loop().run_in_executor(self.lock_waiter, function)

    def transaction(self, writes: list[Write]) -> list:
        # One connection kept from group to group: checking one out of the pool and back for
        # every group cost more than the group's own statements.
        if self.connection is None:
            self.connection = self.db.writer()
        try:
            with self.connection.begin():
                return run_writes(self.connection, writes)
        except Exception:
            connection, self.connection = self.connection, None  # a fresh one for the next group
            with contextlib.suppress(Exception):
                connection.close()
            raise


def committer_for(db, on_loop: bool) -> Committer:
    """For an app run on the event loop (``on_loop``) over SQLite, the loop committer; else
    (a database over the network, or the app in threads) a committer thread."""
    return LoopCommitter(db) if on_loop and db.engine.dialect.name == "sqlite" else ThreadCommitter(db)


def settle_all(group: list, outcomes: list) -> None:
    for (_, future), (result, error) in zip(group, outcomes, strict=True):
        settle(future, result=result, error=error)


def settle(future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if isinstance(future, Future) and not future.set_running_or_notify_cancel():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
