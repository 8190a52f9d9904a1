"""SQLite's writer lock: a writer that had to wait is let in before the pipeline's next batch."""
from __future__ import annotations

import fcntl
import threading

from hub.store.db import WriterLock


def test_the_pipeline_lets_a_queued_writer_in_before_its_next_batch(tmp_path):
    lock = WriterLock(str(tmp_path / "hub.db"))
    release_writer = threading.Event()

    def other_writer():
        with lock.held():
            release_writer.wait(10)

    with lock.held():  # a batch
        writer = threading.Thread(target=other_writer)
        writer.start()
        while not taken(lock.queue_path):  # the other writer queues for the lock
            threading.Event().wait(0.001)
    lock.let_waiting_writers_in(at_most=10)
    assert taken(lock.path)  # the other writer has the lock before the next batch asks for it
    release_writer.set()
    writer.join(10)


def test_the_pause_lasts_while_a_writer_is_queued(tmp_path):
    lock = WriterLock(str(tmp_path / "hub.db"))
    with open(lock.queue_path, "a+b") as stuck:
        fcntl.flock(stuck, fcntl.LOCK_SH)  # a writer queued, not yet let in
        waited = []
        pause = threading.Thread(target=lambda: waited.append(lock.let_waiting_writers_in(at_most=10)))
        pause.start()
        pause.join(0.05)
        assert pause.is_alive()
        fcntl.flock(stuck, fcntl.LOCK_UN)
    pause.join(10)
    assert waited == [True]


def test_with_no_writer_queued_the_pipeline_goes_on_at_once(tmp_path):
    lock = WriterLock(str(tmp_path / "hub.db"))
    assert not lock.let_waiting_writers_in(at_most=3600)  # returns at once: nobody is queued
    with lock.held():
        assert taken(lock.path)


def taken(path: str) -> bool:
    """Whether some descriptor holds a lock on ``path`` (checked on one of this test's own)."""
    with open(path, "a+b") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False
