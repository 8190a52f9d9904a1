"""Prometheus metrics. Under ``hub run`` / ``hub web`` the processes share
``PROMETHEUS_MULTIPROC_DIR`` so counters add up across web workers and rq workers."""
from __future__ import annotations

import os

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from hub.web import current_hub, health

bp = Blueprint("metrics", __name__)
INTAKE = Counter("hub_events_total", "Intake deliveries by outcome",
                 ["kind", "provider", "outcome"])  # outcome: received | accepted | duplicate | rejected
PIPELINE_LATENCY = Histogram("hub_pipeline_latency_seconds",
                             "From receipt of an event to its commit as a lead or touch",
                             buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900))
LEADS = Counter("hub_leads_created_total", "Leads created by the pipeline")


def observe_intake(kind: str, provider: str, outcome: str) -> None:
    INTAKE.labels(kind, provider, "received").inc()
    INTAKE.labels(kind, provider, outcome).inc()


def observe_batch(result) -> None:
    for latency in result.latencies:
        PIPELINE_LATENCY.observe(latency)
    if result.new_leads:
        LEADS.inc(len(result.new_leads))


class StateCollector:
    """Gauges read at scrape time from the source of truth: backlog and queue depth."""

    def __init__(self, hub):
        self.hub = hub

    def collect(self):
        backlog = GaugeMetricFamily("hub_events_backlog", "Raw events by status", labels=["status"])
        for status, count in health.event_counts(self.hub).items():
            backlog.add_metric([status], count)
        yield backlog
        depth = self.hub.kicker.queue_depth()
        queue = GaugeMetricFamily("hub_queue_depth", "Jobs waiting in the rq queue")
        queue.add_metric([], float("nan") if depth is None else depth)
        yield queue
        outbox = GaugeMetricFamily("hub_outbox_due", "Notifications due for sending")
        outbox.add_metric([], health.outbox_due(self.hub))
        yield outbox
        yield from mailbox_gauges(self.hub)
        yield source_gauge(self.hub)


def source_gauge(hub):
    from sqlalchemy.exc import SQLAlchemyError

    from hub.delivery import sources

    gauge = GaugeMetricFamily("hub_source_silent", "1 while a source has sent nothing for its quiet_after",
                              labels=["source"])
    try:
        silent = sources.alarms(hub)
    except SQLAlchemyError:
        silent = {}
    for key, since in silent.items():
        gauge.add_metric([key], 1 if since else 0)
    return gauge


def mailbox_gauges(hub):
    labels = ["mailbox"]
    behind = GaugeMetricFamily("hub_mailbox_behind", "Messages on the server above the checkpoint", labels=labels)
    errors = GaugeMetricFamily("hub_mailbox_consecutive_errors", "Failed polls in a row", labels=labels)
    success = GaugeMetricFamily("hub_mailbox_last_success_timestamp",
                                "Unix time of the last successful poll (0: never)", labels=labels)
    for row in health.mailbox_health(hub):
        behind.add_metric([row.key], row.behind)
        errors.add_metric([row.key], row.consecutive_errors)
        success.add_metric([row.key], row.last_success_at.timestamp() if row.last_success_at else 0)
    return [behind, errors, success]


def render(hub) -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)
    else:
        counters = REGISTRY
    state = CollectorRegistry()
    state.register(StateCollector(hub))
    return generate_latest(counters) + generate_latest(state), CONTENT_TYPE_LATEST


@bp.get("/metrics")
def prometheus():
    body, content_type = render(current_hub())
    return Response(body, content_type=content_type)
