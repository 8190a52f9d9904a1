"""For admins: every source with its traffic and silence alarm, and the config, read only."""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta

import yaml
from flask import render_template
from sqlalchemy import func, select

from hub.delivery import sources as watched
from hub.pipeline.activity import source_key
from hub.rules.tasks import business_hours
from hub.store import rejects
from hub.store.models import RawEvent, SyncDelivery, Touch
from hub.web import current_hub
from hub.web.console import rawview
from hub.web.console.blueprint import bp
from hub.web.console.views import roles

DAY = timedelta(hours=24)


def event_counts(session, since) -> dict[str, Counter]:
    """Per source over the day: events, leads (distinct) and failures."""
    rows = session.execute(select(RawEvent.kind, RawEvent.provider, RawEvent.endpoint, RawEvent.status,
                                  func.count(), func.count(RawEvent.lead_id.distinct()))
                           .where(RawEvent.received_at >= since)
                           .group_by(RawEvent.kind, RawEvent.provider, RawEvent.endpoint, RawEvent.status))
    counts: dict[str, Counter] = defaultdict(Counter)
    for kind, provider, endpoint, status, events, leads in rows:
        tally = counts[source_key(kind, provider, endpoint)]
        tally["events"] += events
        tally["leads"] += leads
        tally["failures"] += events if status in ("failed", "dead") else 0
    return counts


def number_counts(session, since) -> dict[str, Counter]:
    """Per tracked number over the day: calls and SMS to it, and the leads they went to."""
    counts: dict[str, Counter] = defaultdict(Counter)
    leads: dict[str, set] = defaultdict(set)
    for source, lead_id in session.execute(select(Touch.source, Touch.lead_id).where(
            Touch.at >= since, Touch.channel.in_(("call", "sms")))):
        number = (source or {}).get("called_number")
        if number:
            counts[f"number/{number}"]["events"] += 1
            leads[f"number/{number}"].add(lead_id)
    for key, members in leads.items():
        counts[key]["leads"] = len(members)
    return counts


def crm_rows(session, config, since) -> list[dict]:
    rows = []
    for entry in config["crm"]:
        name = entry.get("name") or entry["target"]
        mine = SyncDelivery.target == name
        rows.append({"name": name, "kind": entry["target"],
                     "last": session.scalar(select(func.max(SyncDelivery.synced_at)).where(mine)),
                     "synced": session.scalar(select(func.count()).where(mine, SyncDelivery.synced_at >= since)),
                     "failing": session.scalar(select(func.count()).where(mine, SyncDelivery.status == "failed")),
                     "dead": session.scalar(select(func.count()).where(mine, SyncDelivery.status == "dead"))})
    return rows


@bp.get("/sources")
@roles("admin")
def sources():
    hub = current_hub()
    now, listed = hub.now(), watched.configured(hub.config)
    hours = business_hours(hub.config)
    with hub.db.read() as session:
        states = watched.states(hub, [s.key for s in listed], session)
        counts = event_counts(session, now - DAY) | number_counts(session, now - DAY)
        crm = crm_rows(session, hub.config, now - DAY)
    rows = [{"source": s, "state": states.get(s.key), "counts": counts.get(s.key, Counter()),
             "silent": watched.silent_from(s, states.get(s.key), hours, now)} for s in listed]
    return render_template("console/sources.html", rows=rows, crm=crm,
                           rejected=rejects.last_day(hub, [s.key for s in listed]))


def masked_config(value, key: str = ""):
    """The config as written; a key named like a secret shows only whether it is set."""
    if isinstance(value, dict):
        return {k: masked_config(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked_config(v, key) for v in value]
    if key.endswith("_env") or value is None:
        return value  # the name of an environment variable, never its value
    if rawview.CREDENTIAL.search(key):
        return rawview.MASK
    if isinstance(value, str) and "://" in value:
        return rawview.url_without_credentials(value) + ("?" + rawview.MASK if "?" in value else "")
    return value


@bp.get("/config")
@roles("admin")
def config():
    document = masked_config(current_hub().config.document or {})
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False, default_flow_style=False)
    return render_template("console/config.html", text=text, path=current_hub().config.path)
