"""Deliveries refused at the door, counted per source, reason and hour in Redis (the events
table holds only what was accepted). Best effort: when Redis is down nothing is counted."""
from __future__ import annotations

import redis

REASONS = {401: "signature", 403: "signature", 400: "validation", 415: "validation", 422: "validation"}
KEEP_SECONDS = 25 * 3600


def key(source: str, reason: str, hour: int) -> str:
    return f"hub:rejects:{source}:{reason}:{hour}"


def count(hub, source: str, status: int) -> None:
    reason = REASONS.get(status)
    if reason is None or not hub.kicker.breaker.allows():
        return
    name = key(source, reason, int(hub.now().timestamp() // 3600))
    try:
        pipe = hub.kicker.connection.pipeline(transaction=False)
        pipe.incr(name).expire(name, KEEP_SECONDS).execute()
    except redis.RedisError:
        hub.kicker.breaker.trip()


def last_day(hub, sources: list[str]) -> dict[str, dict[str, int]]:
    """``{source: {"signature": n, "validation": n}}`` over the last 24 hours."""
    hour = int(hub.now().timestamp() // 3600)
    names = [(source, reason, key(source, reason, h)) for source in sources
             for reason in sorted(set(REASONS.values())) for h in range(hour - 23, hour + 1)]
    totals = {source: {reason: 0 for reason in set(REASONS.values())} for source in sources}
    if not names or not hub.kicker.breaker.allows():
        return totals
    try:
        values = hub.kicker.connection.mget([name for _, _, name in names])
    except redis.RedisError:
        hub.kicker.breaker.trip()
        return totals
    for (source, reason, _), value in zip(names, values, strict=True):
        totals[source][reason] += int(value or 0)
    return totals
