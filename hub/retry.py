"""When to try again: exponential backoff with jitter, never sooner than a provider's
``Retry-After``. One policy per config section that retries (``outbox``, ``sync``), and one
for raw events the pipeline failed on."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class RetryPolicy:
    base: timedelta
    cap: timedelta
    max_attempts: int
    jitter: bool = True  # retries of many rows spread out instead of arriving together

    @classmethod
    def of(cls, section: dict) -> RetryPolicy:
        return cls(section["backoff"], section["backoff_max"], section["max_attempts"])

    def delay(self, attempts: int, retry_after: float | None = None) -> timedelta:
        delay = min(self.cap, self.base * (2 ** max(0, attempts - 1)))
        if self.jitter:
            delay *= random.uniform(0.5, 1.0)
        if retry_after:
            delay = max(delay, timedelta(seconds=retry_after))
        return delay

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


def for_events(section: dict) -> RetryPolicy:
    """Raw events the pipeline failed on: 30 s, doubling to an hour, ``pipeline.max_attempts``."""
    return RetryPolicy(timedelta(seconds=30), timedelta(hours=1), section["max_attempts"], jitter=False)
