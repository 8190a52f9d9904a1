"""The rq job functions. Each drains what is due, so one run serves many wake-up calls."""
from __future__ import annotations

import time

from hub import context
from hub.delivery import crm, crm_readback, outbox
from hub.pipeline import process_pending as run_pipeline
from hub.pipeline import score
from hub.reports import snapshots
from hub.web import metrics

GATHER = 0.05  # seconds between drains: the next batch gathers what arrived meanwhile


def process_pending() -> int:
    """Drain the pending events, then linger a moment for more. Web processes kick at most
    every ``KICK_EVERY`` seconds under load; lingering longer than that guarantees an event
    committed right after a skipped kick is still found by a running job.

    Once the backlog is drained the job waits ``GATHER`` before it looks again, also when
    it found events: a batch has a fixed cost and holds SQLite's writer lock, so draining
    each event the moment it is committed would spend the lock (which the intake's commits
    wait for) on batches of one or two."""
    hub = context.current()
    hub.kicker.clear("pipeline")
    linger = hub.config["pipeline"]["linger"].total_seconds()
    processed, idle_since = 0, time.monotonic()
    while True:
        result = run_pipeline(hub)
        handle_result(hub, result)
        processed += result.events
        if result.more:
            hub.kicker.kick("pipeline", force=True)  # time ran out with work left: a new job goes on
            return processed
        if result.events:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= linger:
            return processed
        time.sleep(min(GATHER, linger))


def handle_result(hub, result) -> None:
    metrics.observe_batch(result)
    if result.notifications:
        hub.kicker.kick("outbox")
    if result.syncs:
        hub.kicker.kick("sync")


def deliver_notifications() -> int:
    hub = context.current()
    hub.kicker.clear("outbox")
    return outbox.deliver_due(hub)


def deliver_syncs() -> int:
    hub = context.current()
    hub.kicker.clear("sync")
    return crm.deliver_due(hub)


def read_back_crm_events() -> int:
    hub = context.current()
    hub.kicker.clear("crm")
    taken = crm_readback.drain(hub)
    kick_pushes(hub)
    return taken


def poll_crms() -> int:
    hub = context.current()
    hub.kicker.clear("crm_poll")
    applied = crm_readback.poll_due(hub)
    kick_pushes(hub)
    return applied


def kick_pushes(hub) -> None:
    """A change read back from one CRM goes out to the other targets."""
    if crm.due_count(hub):
        hub.kicker.kick("sync")


def train_scores() -> int:
    """The nightly retraining of the learned probability (and rescoring of open leads)."""
    hub = context.current()
    hub.kicker.clear("score")
    if not score.training_due(hub):  # another worker trained since the kick
        return 0
    score.train(hub)
    kick_pushes(hub)
    return 1


def build_report_snapshots() -> int:
    """The report snapshots of the months changed since their last build."""
    hub = context.current()
    hub.kicker.clear("reports")
    return len(snapshots.refresh(hub))
