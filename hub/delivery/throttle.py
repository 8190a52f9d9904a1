"""A token bucket per CRM target, kept in Redis so every worker on every machine shares it.

``rate`` tokens a second refill up to ``burst``; each request takes one. The time comes from
the caller (not Redis' TIME) so tests can run hours of traffic on a virtual clock. When Redis
is down, each process falls back to a local bucket with the same numbers: calls stay polite
per process, and nothing waits on a dead Redis.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis

TAKE = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or ARGV[2])
local stamp = tonumber(redis.call('HGET', KEYS[1], 'stamp') or ARGV[3])
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
if wait == 0 then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
  redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
end
return tostring(wait)
"""


class LocalBucket:
    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), None
        self.lock = threading.Lock()

    def take(self, now: float) -> float:
        with self.lock:
            if self.stamp is not None:
                self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
            if self.tokens >= 1:
                self.tokens -= 1
                self.stamp = now
                return 0.0
            return (1 - self.tokens) / self.rate


class Throttle:
    """``throttle()`` blocks until the target may be called once more."""

    def __init__(self, connection: redis.Redis | None, key: str, rate: float, burst: int,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.connection, self.key = connection, f"hub:throttle:{key}"
        self.rate, self.burst = rate, burst
        self.clock, self.sleep = clock, sleep
        self.local = LocalBucket(rate, burst)
        self.waited = 0.0

    def take(self) -> float:
        now = self.clock()
        if self.connection is not None:
            try:
                return float(self.connection.eval(TAKE, 1, self.key, self.rate, self.burst, now))
            except redis.RedisError:
                self.connection = None  # fall back for the rest of this job
        return self.local.take(now)

    def __call__(self) -> None:
        while (wait := self.take()) > 0:
            self.waited += wait
            self.sleep(wait)
