"""Fixed-window request limits per client and endpoint, shared through Redis by every web
process. A process counts locally and adds its count to Redis every ``batch`` requests of a
client (every request when the limit is small), so a client posting one form never costs a
Redis round trip, and a flood is stopped within a few requests of the limit. When Redis is
down the limiter lets requests through: losing a lead is worse than serving a burst."""
from __future__ import annotations

import threading

import redis

MAX_KEYS = 10000  # windows of one-off clients are forgotten past this many


class LocalCounts:
    """This process's share of the counting."""

    def __init__(self):
        self.unsent: dict[str, int] = {}  # window key -> requests not yet added to Redis
        self.blocked: set[str] = set()  # window keys known to be over the limit
        self.lock = threading.Lock()

    def count(self, key: str, batch: int) -> int | None:
        """None while the batch fills; then the batch to add to the shared count."""
        with self.lock:
            pending = self.unsent.get(key, 0) + 1
            if pending < batch:
                self.unsent[key] = pending
                return None
            self.unsent.pop(key, None)
            if len(self.unsent) > MAX_KEYS:
                self.unsent.clear()
            return pending

    def block(self, key: str) -> None:
        with self.lock:
            if len(self.blocked) > MAX_KEYS:
                self.blocked.clear()
            self.blocked.add(key)


def allow(hub, client: str, scope: str, per_minute: int) -> tuple[bool, int]:
    """(allowed, seconds until the window resets)."""
    now = hub.now().timestamp()
    window, retry_after = int(now // 60), 60 - int(now % 60)
    key = f"hub:rate:{scope}:{client}:{window}"
    local = hub.rate_counts
    if key in local.blocked:
        return False, retry_after
    batch = local.count(key, max(1, per_minute // 20))
    if batch is None:
        return True, retry_after
    total = add_to_shared(hub, key, batch)
    if total is None or total <= per_minute:
        return True, retry_after
    local.block(key)
    return False, retry_after


def add_to_shared(hub, key: str, count: int) -> int | None:
    kicker = hub.kicker
    if not kicker.breaker.allows():
        return None
    try:
        total = kicker.connection.incrby(key, count)
        if total == count:  # the window's first addition sets its expiry
            kicker.connection.expire(key, 61)
        return total
    except redis.RedisError:
        kicker.breaker.trip()
        return None
