"""The reports at scale: a store of 1,000,000 leads over a year (with their tasks, history and
stage stays) built in bulk, the report snapshots built, then every report timed for the last 30 days and for the whole
year, the median of several runs beside baselines measured in the same run: a bare
``count(*)`` of the period's leads and a plain GROUP BY of them on one column.

    python bench/reports.py [--leads 1000000] [--runs 5] [--database-url URL ...]

SQLite (a fresh file) always runs; PostgreSQL too with BENCH_POSTGRES_URL or --database-url
(its tables are emptied first). The leads are written as the console bench writes them, so
the database's triggers fill ``lead_facts`` and each stay's ``lead_created_at`` as they would
for leads made by the pipeline.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_document
from console import (
    HISTORY_COLUMNS,
    LEAD_COLUMNS,
    MANAGERS,
    START,
    TASK_COLUMNS,
    created,
    fresh_database,
    history_rows,
    lead_rows,
    load_store,
    task_rows,
)

from hub.config import load_config
from hub.reports import funnel, queries, snapshots
from hub.store.db import Database, make_engine
from hub.store.models import Lead, ReportChange, ReportSnapshot

TARGET_SECONDS = 1.0
ZONE = ZoneInfo("Europe/Moscow")
PIPELINES = {"sales": {"stages": [{"name": "introduction"}, {"name": "offer"}, {"name": "invoice"}]}}
STAGES = ("introduction", "offer", "invoice")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each report; the median is reported")
    parser.add_argument("--database-url", action="append", default=[], help="also run on this database")
    parser.add_argument("--no-sqlite", action="store_true", help="only the databases named")
    return parser.parse_args()


# -- the store: the console bench's leads, tasks and history, plus stays, escalations, callbacks

def stays_of(n: int) -> int:
    """How far lead ``n`` went: every lead entered the first stage, half the second, a quarter the third."""
    return 1 + (n % 2 == 0) + (n % 4 == 0)


HANDLED = LEAD_COLUMNS.index("handled_at")
LAST_SOURCE = LEAD_COLUMNS.index("last_source")
DIRECT_VISIT = json.dumps({"landing_page": "https://site.example/"})
GOOGLE_AD = json.dumps({"utm_source": "google", "utm_campaign": "retarget", "gclid": "g"})


def staged_lead_rows(leads: int):
    """The console bench's leads, with first responses spread from seconds to a day (a tenth
    never answered) and a last touch that differs from the first for some: every third a
    direct visit, every seventh a Google ad, so the attribution models disagree."""
    for n, row in enumerate(lead_rows(leads), start=1):
        row = list(row)
        created_at = created(n, leads)
        row[HANDLED] = None if n % 10 == 0 else created_at + timedelta(seconds=(n * 7919) % 86400 // (1 + n % 5))
        row[LAST_SOURCE] = DIRECT_VISIT if n % 3 == 0 else GOOGLE_AD if n % 7 == 0 else row[LAST_SOURCE]
        yield (*row, "sales", STAGES[stays_of(n) - 1])


def stage_rows(leads: int):
    for n in range(1, leads + 1):
        entered, count = created(n, leads), stays_of(n)
        for index in range(count):
            seconds = None if index == count - 1 else 600 + (n * 37 + index * 101) % 86400
            left = entered + timedelta(seconds=seconds) if seconds is not None else None
            yield (n, "sales", STAGES[index], entered, left, seconds, "moved" if seconds is not None else None)
            entered = left or entered


STAGE_COLUMNS = ("lead_id", "pipeline", "stage", "entered_at", "left_at", "seconds", "outcome")


def escalation_rows(leads: int):
    for n in range(7, leads + 1, 7):
        yield (n, created(n, leads) + timedelta(minutes=30), "hub", "escalated", "{}")


def callback_rows(leads: int):
    for n in range(11, leads + 1, 11):
        at = created(n, leads)
        yield (n, "callback", f"Call back {n}", at + timedelta(hours=2), MANAGERS[n % 2], "done", at)


def tables(leads: int):
    return [("leads", (*LEAD_COLUMNS, "pipeline", "stage"), staged_lead_rows(leads)),
            ("tasks", TASK_COLUMNS, task_rows(leads)), ("tasks", TASK_COLUMNS, callback_rows(leads)),
            ("lead_history", HISTORY_COLUMNS, history_rows(leads)),
            ("lead_history", HISTORY_COLUMNS, escalation_rows(leads)),
            ("stage_visits", STAGE_COLUMNS, stage_rows(leads))]


def build_store(url: str, leads: int) -> float:
    return load_store(url, tables(leads), load_config(document=bench_document())["team"])


# -- the measurements ------------------------------------------------------------------------

def periods(leads: int) -> dict[str, queries.Query]:
    last = created(leads, leads).astimezone(ZONE).date()
    first = START.astimezone(ZONE).date()
    return {"30 days": queries.Query(last - timedelta(days=29), last, ZONE),
            "year": queries.Query(first, last, ZONE)}


def reports(query: queries.Query) -> dict:
    """name -> a function of a session answering it."""
    def by_source(model: str):
        chosen = queries.Query(query.since, query.until, query.zone, model)
        return lambda session: queries.channels(session, chosen, "utm_source")

    found = {f"channels by utm_source, {model}": by_source(model) for model in queries.MODELS}
    return found | {
        "channels by channel": lambda s: queries.channels(s, query, "channel"),
        "channels by utm_term (500 values)": lambda s: queries.channels(s, query, "utm_term"),
        "channels by utm_source, filter channel=form": lambda s: queries.channels(
            s, queries.Query(query.since, query.until, query.zone, filters=(("channel", "form"),)), "utm_source"),
        "managers": lambda s: queries.managers(s, query),
        "scores": lambda s: queries.scores(s, query),
        "timeseries": lambda s: queries.timeseries(s, query),
        "funnel": lambda s: funnel.funnel(s, query, PIPELINES),
    }


def baselines(query: queries.Query) -> dict:
    period = (Lead.created_at >= query.start, Lead.created_at < query.end)
    return {"baseline: count(*) of the period's leads":
            lambda s: s.scalar(select(func.count()).select_from(Lead).where(*period)),
            "baseline: leads GROUP BY status": lambda s: s.execute(
                select(Lead.status, func.count()).where(*period).group_by(Lead.status)).all()}


def timed(db: Database, report, runs: int) -> list[float]:
    with db.read() as session:
        report(session)  # warm-up: the pages in the cache
    samples = []
    for _ in range(runs):
        with db.read() as session:
            began = time.perf_counter()
            report(session)
            samples.append(time.perf_counter() - began)
    return samples


CHANGED_AGO = (0, 7, 30, 90)  # days before the last one left changed


def changed_days(days: list[str]) -> list[str]:
    return [days[-1 - ago] for ago in CHANGED_AGO if ago < len(days)]


def build_snapshots(db: Database) -> None:
    """What the scheduler does in a running hub; then the last day and the days a week, a month
    and three months before it marked changed, as in a live hub between two rebuilds (today's
    leads, older leads managers just moved), so the reports read those days from the tables."""
    hub = SimpleNamespace(db=db, now=lambda: datetime.now(UTC))
    began = time.perf_counter()
    days = snapshots.refresh(hub)
    print(f"  report snapshots of {len(days)} days built in {time.perf_counter() - began:.1f}s", flush=True)
    changed = changed_days(days)
    with db.write() as session:
        session.add_all(ReportChange(day=day) for day in changed)
    print(f"  {len(changed)} days left changed, read from the tables", flush=True)


def mark_every_day_changed(db: Database, changed: bool) -> None:
    with db.write() as session:
        days = session.scalars(select(ReportSnapshot.day).distinct()).all()
        if changed:
            session.add_all(ReportChange(day=day) for day in days)
        else:
            session.execute(delete(ReportChange).where(ReportChange.day.not_in(changed_days(days))))


def measure(url: str, leads: int, runs: int) -> None:
    db = Database(make_engine(url))
    build_snapshots(db)
    print(f"  {'report':48} {'period':>8} {'p50 s':>7} {'min-max s':>13}  target < {TARGET_SECONDS:.0f} s")
    for label, query in periods(leads).items():
        for name, report in (baselines(query) | reports(query)).items():
            show(name, label, timed(db, report, runs))
    print("  and with no snapshot current, every day read from the tables:")
    mark_every_day_changed(db, True)
    query = periods(leads)["year"]
    for name, report in reports(query).items():
        show(name, "year", timed(db, report, 1), verdict=False)
    mark_every_day_changed(db, False)
    db.dispose()


def show(name: str, label: str, samples: list[float], verdict: bool = True) -> None:
    p50 = statistics.median(samples)
    mark = "" if name.startswith("baseline") or not verdict else ("ok" if p50 < TARGET_SECONDS else "OVER")
    print(f"  {name:48} {label:>8} {p50:7.3f} {min(samples):6.3f}-{max(samples):6.3f}  {mark}", flush=True)


def main() -> None:
    args = parse_args()
    extra = [os.environ["BENCH_POSTGRES_URL"]] if os.environ.get("BENCH_POSTGRES_URL") else []
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as folder:
        for url in [*([] if args.no_sqlite else [None]), *dict.fromkeys(extra + args.database_url)]:
            target = fresh_database(url, Path(folder))
            print(f"== {make_engine(target).dialect.name}: building {args.leads:,} leads over a year", flush=True)
            print(f"  built in {build_store(target, args.leads):.0f}s")
            measure(target, args.leads, args.runs)


if __name__ == "__main__":
    main()
