"""Pipeline throughput: one worker turning a backlog of pending form events into leads,
against a bare ORM insert of as many Lead rows in batches of the same size; and the same
pipeline with lead scoring on (rules, a value and a trained probability model) beside it.

    python bench/pipeline.py [--events 10000] [--database-url URL ...] [--rounds 3] [--profile]

SQLite (a fresh file) always runs; PostgreSQL too with BENCH_POSTGRES_URL or --database-url.
"""
from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LANDING, bench_document, form_body, form_fields, median, phone, rate, start_redis

from connectors.base import Inbound
from hub import context, registry
from hub.config import load_config
from hub.pipeline import process_pending
from hub.pipeline import score as scoring
from hub.pipeline.heap import settle_heap
from hub.pipeline.normalise import endpoint_settings, fingerprint
from hub.pipeline.score_model import Model
from hub.store.db import make_engine
from hub.store.migrate import upgrade
from hub.store.models import Base, Lead, RawEvent, ScoreModel, Touch, new_event_id

TARGET_LEADS_PER_SECOND = 1000
SCORING_BUDGET = 0.10  # scoring may cost at most this share of the pipeline's leads/s
SCORING = {
    "rules": [
        {"when": {"utm_source": ["yandex", "google"]}, "points": 20},
        {"when": {"utm_medium": ["cpc"]}, "points": 5},
        {"when": {"business_hours": True}, "points": 10},
        {"name": "no e-mail", "when": {"has_email": False}, "points": -15},
        {"name": "wholesale", "when": {"words": ["опт", "wholesale"]}, "points": 15},
        {"name": "budget given", "when": {"fields": {"budget": True}}, "points": 10},
    ],
    "classes": {"A": {"points": 40, "probability": 0.5}, "B": {"points": 20, "probability": 0.2}},
    "amount": {"field": "budget", "defaults": [{"when": {"utm_source": ["yandex"]}, "amount": 120000}],
               "default": 50000},
    "model": {"fields": ["channel", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
                         "has_email", "business_hours"], "min_closed": 1, "retrain_at": None},
}
HEADERS = {"content-type": "application/x-www-form-urlencoded", "referer": LANDING}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="pending events in the backlog")
    parser.add_argument("--repeats", type=float, default=0.05, help="share repeating an earlier phone")
    parser.add_argument("--database-url", action="append", default=[], help="also run on this database")
    parser.add_argument("--batch-size", type=int, help="pipeline.batch_size (default: the config's)")
    parser.add_argument("--rounds", type=int, default=3, help="baseline+pipeline pairs; medians reported")
    parser.add_argument("--profile", action="store_true", help="cProfile the first pipeline run")
    return parser.parse_args()


def databases(args: argparse.Namespace) -> list[str | None]:
    """None stands for a fresh SQLite file per run."""
    extra = [os.environ["BENCH_POSTGRES_URL"]] if os.environ.get("BENCH_POSTGRES_URL") else []
    return [None, *dict.fromkeys(extra + args.database_url)]


def fresh_database(url: str | None, folder: Path, name: str) -> str:
    if url is None:
        url = f"sqlite:///{folder / name}.db"
        upgrade(url)
        return url
    upgrade(url)
    engine = make_engine(url)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


def people(events: int, share: float, seed: int = 7) -> list[int]:
    """Whose submission each event is: its own number, or (for a repeat) an earlier person's."""
    rng = random.Random(seed)
    repeats = set(rng.sample(range(1, events), round(events * share))) if events > 1 else set()
    who: list[int] = []
    for number in range(events):
        who.append(who[rng.randrange(number)] if number in repeats else number)
    return who


def raw_row(settings: dict, number: int, person: int, now: datetime) -> dict:
    """A pending form event as hub/receive.py stores it."""
    row = dict(event_id=new_event_id(), channel="form", kind="forms", provider="generic",
               endpoint="landing", delivery_key=None, method="POST",
               url="http://127.0.0.1:8000/hooks/forms/landing", subpath="", query=[],
               headers=HEADERS, body=form_body(number, person), remote_addr="127.0.0.1",
               received_at=now, status="pending", attempts=0)
    inbound = Inbound(method="POST", url=row["url"], headers=HEADERS, body=row["body"])
    parsed = registry.intake("forms", "generic").parse(inbound, settings)
    row["fingerprint"] = fingerprint("landing", parsed[0].fields)
    return row


def create_backlog(hub, who: list[int]) -> float:
    """Insert the pending events in bulk; returns the seconds it took."""
    settings = endpoint_settings(hub.config, "forms", "generic", "landing")
    now = hub.now()
    rows = [raw_row(settings, number, person, now) for number, person in enumerate(who)]
    started = time.perf_counter()
    with hub.db.write() as session:
        session.execute(insert(RawEvent), rows)
    return time.perf_counter() - started


def insert_leads(hub, count: int, batch: int) -> float:
    """The baseline: ``count`` Lead rows added with the ORM, one transaction per batch."""
    now = datetime.now(UTC)
    source = {key: value for key, value in form_fields(0).items() if key.startswith("utm_")}
    started = time.perf_counter()
    for first in range(0, count, batch):
        with hub.db.write() as session:
            session.add_all([Lead(name=f"Client {n}", phone=phone(n), email=f"client{n}@example.com",
                                  channel="form", source=source, last_source=source, created_at=now)
                             for n in range(first, min(first + batch, count))])
    return time.perf_counter() - started


def counts(hub) -> dict[str, int]:
    with hub.db.read() as session:
        found = {"leads": session.scalar(select(func.count()).select_from(Lead)),
                 "touches": session.scalar(select(func.count()).select_from(Touch))}
        statuses = session.execute(select(RawEvent.status, func.count()).group_by(RawEvent.status))
        found.update({f"events {status}": n for status, n in statuses})
        return found


CPU_SECONDS: list[float] = []  # the process's CPU time of each pipeline run, in order
SCORING_SECONDS = [0.0]  # time inside the scorer (loading it, scoring), summed over a run


def timed(function):
    """``function``, adding the seconds it takes to SCORING_SECONDS."""
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SCORING_SECONDS[0] += time.perf_counter() - started
    return wrapper


scoring.Scorer.score = timed(scoring.Scorer.score)
scoring.Scorer.load = classmethod(timed(scoring.Scorer.load.__func__))


def run_pipeline(hub, profile: bool) -> float:
    profiler = cProfile.Profile() if profile else None
    cpu = time.process_time()
    SCORING_SECONDS[0] = 0.0
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    process_pending(hub, max_seconds=3600)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    CPU_SECONDS.append(time.process_time() - cpu)
    if profiler:
        print_profile(profiler)
    return elapsed


def print_profile(profiler: cProfile.Profile) -> None:
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
    print("\n--- profile: by own time ---")
    stats.sort_stats("tottime").print_stats(25)
    if os.environ.get("BENCH_CALLERS"):
        stats.print_callers(os.environ["BENCH_CALLERS"])
    print("--- profile: by cumulative time ---")
    stats.sort_stats("cumulative").print_stats(35)


def trained_model() -> Model:
    """A model as 2,000 closed leads would train it, over values the backlog has and others."""
    values = {"channel": ["form", "call", "mail"], "utm_source": ["google", "yandex", "(none)"],
              "utm_medium": ["cpc", "organic"], "utm_campaign": ["spring", "brand"], "utm_term": ["crm", "erp"],
              "utm_content": [f"ad{n}" for n in range(7)], "has_email": ["yes", "no"],
              "business_hours": ["yes", "no"]}
    tables = {name: {value: [40 + 13 * index, 90 - 7 * index] for index, value in enumerate(options)}
              for name, options in values.items()}
    return Model(tuple(values), 2000, 600, tables)


def install_model(hub) -> None:
    model = trained_model()
    with hub.db.write() as session:
        session.add(ScoreModel(trained_at=hub.now(), fields=list(model.fields), closed=model.closed,
                               won=model.won, tables=model.tables))


def baseline_round(url: str | None, folder: Path, name: str, config, redis_url: str, count: int) -> float:
    hub = context.build(config, fresh_database(url, folder, name), redis_url)
    try:
        return insert_leads(hub, count, config["pipeline"]["batch_size"])
    finally:
        hub.db.dispose()


def pipeline_round(url: str | None, folder: Path, name: str, config, redis_url: str,
                   who: list[int], profile: bool) -> tuple[float, float, dict]:
    """(seconds to store the backlog, seconds to process it, counts afterwards)."""
    hub = context.build(config, fresh_database(url, folder, name), redis_url)
    try:
        if config["scoring"]:
            install_model(hub)
        backlog = create_backlog(hub, who)
        settle_heap(hub)  # as the worker does before its first job
        elapsed = run_pipeline(hub, profile)
        return backlog, elapsed, counts(hub)
    finally:
        hub.db.dispose()


def check(found: dict, events: int, leads: int) -> str:
    expected = {"leads": leads, "touches": events, "events processed": events}
    wrong = {key: (found.get(key, 0), value) for key, value in expected.items() if found.get(key, 0) != value}
    return "ok" if not wrong else f"MISMATCH (found, expected): {wrong}"


def bench_database(url: str | None, folder: Path, configs: dict, redis_url: str, args) -> dict:
    """Each round: the bare insert, then the pipeline without and with scoring (in turns
    first, so neither always runs on the warmer machine)."""
    who = people(args.events, args.repeats)
    leads = len(set(who))
    config = configs["off"]
    label = "sqlite" if url is None else make_engine(url).url.render_as_string(hide_password=True)
    print(f"\n== {label}: {args.events} events, {leads} distinct phones, "
          f"batch size {config['pipeline']['batch_size']}", flush=True)
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    inside: list[float] = []  # share of the scored run's time spent inside the scorer
    baseline = []
    for run in range(args.rounds):
        baseline.append(rate(leads, baseline_round(url, folder, f"baseline{run}", config, redis_url, leads)))
        for mode in ("off", "on") if run % 2 == 0 else ("on", "off"):
            backlog, elapsed, found = pipeline_round(url, folder, f"pipeline-{mode}{run}", configs[mode], redis_url,
                                                     who, args.profile and run == 0 and mode == "on")
            seconds[mode].append(elapsed)
            cpu[mode].append(CPU_SECONDS[-1])
            if mode == "on":
                inside.append(SCORING_SECONDS[0] / elapsed)
            print(f"round {run + 1}, scoring {mode}: backlog stored in {backlog:.2f}s; pipeline {elapsed:.2f}s "
                  f"(CPU {cpu[mode][-1]:.2f}s) = {rate(args.events, elapsed):.0f} events/s, "
                  f"{rate(leads, elapsed):.0f} leads/s; bare insert {baseline[-1]:.0f} leads/s; "
                  f"{found} -> {check(found, args.events, leads)}", flush=True)
    row = summary(label, args.events, leads, median(seconds["off"]), median(seconds["on"]), median(baseline))
    # the cost of scoring, paired within each round (the machine's load drifts between rounds)
    row["scoring cost"] = median([1 - off / on for off, on in zip(seconds["off"], seconds["on"], strict=True)])
    row["scoring CPU cost"] = median([1 - off / on for off, on in zip(cpu["off"], cpu["on"], strict=True)])
    row["inside the scorer"] = median(inside)
    return row


def summary(label: str, events: int, leads: int, seconds: float, scored: float, baseline: float) -> dict:
    leads_per_second = rate(leads, seconds)
    return {"database": label, "events/s": rate(events, seconds), "leads/s": leads_per_second,
            "scored leads/s": rate(leads, scored), "bare insert leads/s": baseline,
            "ratio": leads_per_second / baseline if baseline else 0.0}


def report(rows: list[dict], batch: int) -> None:
    print(f"\nmedians (batch size {batch}; ratio = pipeline leads/s / bare insert leads/s):")
    for row in rows:
        verdict = ""
        if row["database"] == "sqlite":
            reached = row["leads/s"] >= TARGET_LEADS_PER_SECOND
            verdict = " ok" if reached else f" BELOW TARGET {TARGET_LEADS_PER_SECOND}"
        print(f"  {row['database']}: {row['events/s']:.0f} events/s, {row['leads/s']:.0f} leads/s{verdict}; "
              f"bare insert {row['bare insert leads/s']:.0f} leads/s; ratio {row['ratio']:.3f}")
        within = "ok" if row["scoring cost"] <= SCORING_BUDGET else f"OVER BUDGET {SCORING_BUDGET:.0%}"
        print(f"  {row['database']} with scoring: {row['scored leads/s']:.0f} leads/s; scoring costs "
              f"{row['scoring cost']:.1%} of the pipeline's leads/s ({within}), {row['scoring CPU cost']:.1%} "
              "of its CPU time (median of the rounds' paired figures); "
              f"{row['inside the scorer']:.1%} of the scored run's time is spent inside the scorer")


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    document = bench_document()
    if args.batch_size:
        document.setdefault("pipeline", {})["batch_size"] = args.batch_size
    configs = {"off": load_config(document=document), "on": load_config(document={**document, "scoring": SCORING})}
    config = configs["off"]
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        folder = Path(tmp)
        redis_url, server = start_redis(folder)
        try:
            rows = [bench_database(url, folder, configs, redis_url, args) for url in databases(args)]
        finally:
            if server is not None:
                server.shutdown()
    report(rows, config["pipeline"]["batch_size"])


if __name__ == "__main__":
    main()
