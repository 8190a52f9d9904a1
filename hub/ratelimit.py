"""Fixed-window request limits per client and endpoint, kept in Redis so every web worker
shares them. When Redis is down the limiter lets requests through: losing a lead is worse
than serving a burst."""
from __future__ import annotations

import redis


def allow(hub, client: str, scope: str, per_minute: int) -> tuple[bool, int]:
    """(allowed, seconds until the window resets)."""
    kicker = hub.kicker
    now = hub.now().timestamp()
    window = int(now // 60)
    retry_after = 60 - int(now % 60)
    if not kicker.breaker.allows():
        return True, retry_after
    key = f"hub:rate:{scope}:{client}:{window}"
    try:
        pipe = kicker.connection.pipeline()
        pipe.incr(key)
        pipe.expire(key, 61)
        count = pipe.execute()[0]
    except redis.RedisError:
        kicker.breaker.trip()
        return True, retry_after
    return count <= per_minute, retry_after
