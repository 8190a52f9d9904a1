"""The process-wide hub: config, database, queue, clock. Built once per process from the
environment (or from a test config), shared by the web app, the jobs and the CLI."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from hub import clock as hub_clock
from hub.config import Config, load_config
from hub.store.db import Database, make_engine
from hub.store.queue import Kicker, connect
from hub.store.ratelimit import LocalCounts


@dataclass
class Hub:
    config: Config
    db: Database
    kicker: Kicker
    clock: Callable[[], datetime] = field(default=hub_clock.now)
    environ: dict = field(default_factory=lambda: os.environ)
    rate_counts: LocalCounts = field(default_factory=LocalCounts)
    pace: dict = field(default_factory=dict)  # this process's timings kept from one batch to the next

    def now(self) -> datetime:
        return self.clock()


_current: Hub | None = None
_lock = threading.Lock()


def build(config: Config | None = None, database_url: str | None = None,
          redis_url: str | None = None) -> Hub:
    config = config or load_config()
    return Hub(config=config, db=Database(make_engine(database_url)),
               kicker=Kicker(lambda: connect(redis_url)))


def current() -> Hub:
    global _current
    with _lock:
        if _current is None:
            _current = build()
        return _current


def install(hub: Hub | None) -> None:
    """Make ``hub`` the process-wide one (tests, the app factory)."""
    global _current
    with _lock:
        _current = hub
