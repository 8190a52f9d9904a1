"""The group committers: a group's writes in one transaction, results only after its commit,
the commit's failure given to every write of the group, one failing write to that write alone."""
from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from hub.store.groupcommit import LoopCommitter, ThreadCommitter
from hub.store.models import RawEvent


def row(number: int, delivery_key: str | None = None) -> dict:
    return {"event_id": f"e{number:04d}", "channel": "form", "kind": "forms", "provider": "generic",
            "endpoint": "landing", "delivery_key": delivery_key, "method": "POST", "url": "http://hub/hooks",
            "subpath": "", "query": [], "body": b"", "headers": {}, "received_at": datetime(2026, 12, 1, tzinfo=UTC),
            "attempts": 0, "status": "ignored"}


def inserting(number: int, delivery_key: str | None = None):
    def write(connection):
        connection.execute(insert(RawEvent.__table__), row(number, delivery_key))
        return number
    return write


def stored(hub) -> int:
    with hub.db.read() as session:
        return session.scalar(select(func.count()).select_from(RawEvent))


@pytest.fixture
def failing_commit(hub):
    def fail(connection):
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))
    event.listen(hub.db.engine, "commit", fail)
    yield
    event.remove(hub.db.engine, "commit", fail)


def held_group(committer: ThreadCommitter, writes: list) -> list:
    """Submit ``writes`` while the committer is busy with a first one, so they form one group."""
    started, release = threading.Event(), threading.Event()

    def first(connection):
        started.set()
        release.wait(5)
        return "first"

    futures = [committer.submit(first)]
    assert started.wait(5)
    futures += [committer.submit(write) for write in writes]
    release.set()
    return [future.exception(10) or future.result() for future in futures]


def test_the_thread_committer_commits_the_queued_writes_together(hub):
    committer = ThreadCommitter(hub.db)
    try:
        outcomes = held_group(committer, [inserting(number) for number in range(5)])
    finally:
        committer.stop()
    assert outcomes == ["first", 0, 1, 2, 3, 4]
    assert (committer.groups, committer.writes) == (2, 6) and stored(hub) == 5


def test_a_failed_commit_fails_every_write_of_the_group(hub, failing_commit):
    committer = ThreadCommitter(hub.db)
    try:
        outcomes = held_group(committer, [inserting(number) for number in range(5)])
    finally:
        committer.stop()
    assert all(isinstance(outcome, OperationalError) for outcome in outcomes)
    assert committer.writes == 0 and stored(hub) == 0


def test_one_failing_write_fails_alone(hub):
    committer = ThreadCommitter(hub.db)
    try:
        writes = [inserting(0, "key-a"), inserting(1, "key-a"), inserting(2, "key-b")]  # 1 repeats 0's key
        outcomes = held_group(committer, writes)
    finally:
        committer.stop()
    assert outcomes[:2] == ["first", 0] and isinstance(outcomes[2], IntegrityError) and outcomes[3] == 2
    assert stored(hub) == 2


def loop_group(committer: LoopCommitter, writes: list) -> list:
    async def main():
        futures = [committer.submit(write) for write in writes]  # one turn of the loop: one group
        return await asyncio.gather(*futures, return_exceptions=True)
    return asyncio.run(main())


def test_the_loop_committer_commits_a_turns_writes_together(hub):
    committer = LoopCommitter(hub.db)
    assert loop_group(committer, [inserting(number) for number in range(5)]) == [0, 1, 2, 3, 4]
    assert (committer.groups, committer.writes) == (1, 5) and stored(hub) == 5


def test_the_loop_committers_failed_commit_fails_every_write(hub, failing_commit):
    committer = LoopCommitter(hub.db)
    outcomes = loop_group(committer, [inserting(number) for number in range(5)])
    assert all(isinstance(outcome, OperationalError) for outcome in outcomes)
    assert committer.writes == 0 and stored(hub) == 0


def test_a_group_waits_for_the_writer_lock_off_the_loop_and_commits_once_it_is_free(sqlite_hub):
    hub = sqlite_hub  # only SQLite files have a writer lock
    committer = LoopCommitter(hub.db)
    holding, release = threading.Event(), threading.Event()

    def other_writer():  # the pipeline's batch, or the other web process's group
        with hub.db.writer_lock.held():
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert holding.wait(5)

    async def main():
        writes = [inserting(0), inserting(1, "key-a"), inserting(2, "key-a")]  # 2 repeats 1's key
        futures = [committer.submit(write) for write in writes]
        await asyncio.sleep(0.05)  # the loop runs on while the group waits
        waiting = [future.done() for future in futures]
        release.set()
        return waiting, await asyncio.gather(*futures, return_exceptions=True)

    try:
        waiting, outcomes = asyncio.run(main())
    finally:
        release.set()
        thread.join(5)
    assert waiting == [False, False, False]
    assert outcomes[:2] == [0, 1] and isinstance(outcomes[2], IntegrityError)
    assert stored(hub) == 2
