"""The rq job functions. Each drains what is due, so one run serves many wake-up calls."""
from __future__ import annotations

from hub import context, crm, metrics, outbox
from hub.pipeline import process_pending as run_pipeline


def process_pending() -> int:
    hub = context.current()
    hub.kicker.clear("pipeline")
    result = run_pipeline(hub)
    metrics.observe_batch(result)
    if result.notifications:
        hub.kicker.kick("outbox")
    if result.syncs:
        hub.kicker.kick("sync")
    if result.events >= hub.config["pipeline"]["batch_size"]:
        hub.kicker.kick("pipeline")  # time ran out with work left: continue in a new job
    return result.events


def deliver_notifications() -> int:
    hub = context.current()
    hub.kicker.clear("outbox")
    return outbox.deliver_due(hub)


def deliver_syncs() -> int:
    hub = context.current()
    hub.kicker.clear("sync")
    return crm.deliver_due(hub)
