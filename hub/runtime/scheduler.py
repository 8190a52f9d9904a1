"""The sweeper: the database says what is due, Redis only wakes workers up. Anything whose
wake-up call was lost (Redis down at intake, a worker killed mid-batch) is picked up here."""
from __future__ import annotations

import logging
import threading

from sqlalchemy import exists, select, update
from sqlalchemy.exc import SQLAlchemyError

from hub.delivery import crm, crm_readback, outbox, sources
from hub.pipeline import score
from hub.reports import snapshots
from hub.rules import firing
from hub.store.models import RawEvent

log = logging.getLogger("hub.scheduler")


def retry_failed_events(hub) -> int:
    """Failed events whose backoff has passed go back to pending."""
    with hub.db.write() as session:
        result = session.execute(update(RawEvent).where(
            RawEvent.status == "failed", RawEvent.retry_at <= hub.now()).values(status="pending"))
        return result.rowcount


def stale_pending(hub) -> bool:
    cutoff = hub.now() - hub.config["pipeline"]["sweep_after"]
    with hub.db.read() as session:
        return bool(session.scalar(select(exists().where(
            RawEvent.status == "pending", RawEvent.kind != crm_readback.KIND, RawEvent.received_at <= cutoff))))


def tick(hub) -> dict:
    """One sweep; returns what it did (for logs and tests)."""
    done = {"filed": hub.db.file_intake(), "retried": retry_failed_events(hub), "stuck": outbox.mark_stuck(hub),
            "timers": firing.fire_due(hub)}
    done["pipeline"] = (stale_pending(hub) or done["retried"] > 0) and hub.kicker.kick("pipeline")
    done["outbox"] = outbox.due_count(hub) > 0 and hub.kicker.kick("outbox")
    done["sync_stuck"] = crm.recover_stuck(hub)
    done["sync"] = crm.due_count(hub) > 0 and hub.kicker.kick("sync")
    done["crm"] = crm_readback.events_due(hub, hub.config["pipeline"]["sweep_after"]) and hub.kicker.kick("crm")
    done["crm_poll"] = crm_readback.polls_due(hub) and hub.kicker.kick("crm_poll")
    done["silence"] = sources.check(hub)
    done["score_training"] = score.training_due(hub) and hub.kicker.kick("score")
    done["report_snapshots"] = snapshots.due(hub) and hub.kicker.kick("reports")
    return done


def run(hub, interval: float = 2.0, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()
    log.info("scheduler started, sweeping every %.1fs", interval)
    while not stop.is_set():
        try:
            tick(hub)
        except SQLAlchemyError as exc:
            log.warning("database unavailable, sweeping again later: %s", exc)
        stop.wait(interval)
