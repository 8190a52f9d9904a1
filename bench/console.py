"""The console at scale: a store of 1,000,000 leads and 5,000,000 events built in bulk, then
the leads list, a search by phone and a lead card, each requested through the app, timed, and
reported at the 50th and 95th percentile beside a bare primary-key SELECT on the same store.

    python bench/console.py [--leads 1000000] [--events-per-lead 5] [--requests 300] [--database-url URL ...]

SQLite (a fresh file) always runs; PostgreSQL too with BENCH_POSTGRES_URL or --database-url
(its tables are emptied first). Each lead has 5 events, 2 touches, a task, 2 history rows and
a notification: 12 million rows at the default size.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from sqlalchemy import func, select, text
from werkzeug.security import generate_password_hash

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_document, phone, start_redis

from hub import context
from hub.config import load_config
from hub.pipeline.route import sync_team
from hub.store.db import Database, make_engine
from hub.store.migrate import upgrade
from hub.store.models import Base, ConsoleUser, Lead
from hub.store.queue import Kicker
from hub.web.app import create_app

TARGET_MS = 150
START = datetime(2025, 12, 1, tzinfo=UTC)
MANAGERS = ("anna", "boris")
STATUSES = ("new", "in_progress", "in_progress", "converted", "junk", "archived", "archived")
CHANNELS = ("form", "form", "call", "mail", "sms")
PASSWORD = "benchmark password"
CHUNK = 20_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--events-per-lead", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300, help="timed requests of each kind")
    parser.add_argument("--database-url", action="append", default=[], help="also run on this database")
    return parser.parse_args()


# -- the store -------------------------------------------------------------------------------

def created(number: int, leads: int) -> datetime:
    return START + timedelta(seconds=number * (365 * 86400 // leads))


def lead_rows(leads: int):
    for n in range(1, leads + 1):
        at, channel = created(n, leads), CHANNELS[n % len(CHANNELS)]
        source = json.dumps({"utm_source": ("yandex", "google", "direct")[n % 3], "utm_campaign": f"c{n % 40}",
                             "utm_term": f"term{n % 500}", "form": "landing" if channel == "form" else None})
        yield (n, STATUSES[n % len(STATUSES)], f"Client {n}", phone(n), f"client{n}@example.com",
               "Please call me back", channel, source, source, MANAGERS[n % 2], "round-robin", at,
               at + timedelta(minutes=n % 997), None, at, at)


LEAD_COLUMNS = ("id", "status", "name", "phone", "email", "message", "channel", "source", "last_source",
                "assignee_id", "assignment_reason", "created_at", "updated_at", "routing_rule", "handled_at",
                "status_changed_at")


def event_rows(leads: int, per_lead: int):
    headers = json.dumps({"content-type": "application/x-www-form-urlencoded"})
    for n in range(1, leads + 1):
        at = created(n, leads)
        for k in range(per_lead):
            number = n * per_lead + k
            body = f"name=Client+{n}&phone={phone(n)}&utm_source=yandex&message=Please+call+me+back".encode()
            yield (f"{number:032x}", "form", "forms", "generic", "landing", "POST",
                   "http://127.0.0.1:8000/hooks/forms/landing", "", "[]", headers, body, "127.0.0.1",
                   at + timedelta(seconds=k), "processed", 1, n, at + timedelta(seconds=k))


EVENT_COLUMNS = ("event_id", "channel", "kind", "provider", "endpoint", "method", "url", "subpath", "query",
                 "headers", "body", "remote_addr", "received_at", "status", "attempts", "lead_id", "processed_at")


def touch_rows(leads: int, per_lead: int):
    for n in range(1, leads + 1):
        at = created(n, leads)
        for k in range(min(2, per_lead)):  # each touch is one of the lead's events
            source = json.dumps({"utm_source": "yandex", "form": "landing"})
            details = json.dumps({"form": "landing", "fields": {"name": f"Client {n}", "phone": phone(n)}})
            yield (n, f"form:{n * per_lead + k:032x}", f"{n * per_lead + k:032x}", "form",
                   at + timedelta(seconds=k), source, details)


TOUCH_COLUMNS = ("lead_id", "touch_key", "event_id", "channel", "at", "source", "details")


def task_rows(leads: int):
    for n in range(1, leads + 1):
        at = created(n, leads)
        yield (n, "call", f"Call Client {n}", at + timedelta(hours=1), MANAGERS[n % 2],
               "open" if n % 5 == 0 else "done", at)


TASK_COLUMNS = ("lead_id", "kind", "title", "due_at", "assignee_id", "status", "created_at")


def history_rows(leads: int):
    for n in range(1, leads + 1):
        at = created(n, leads)
        yield (n, at, "hub", "created", json.dumps({"channel": "form"}))
        yield (n, at, "hub", "assigned", json.dumps({"to": MANAGERS[n % 2], "reason": "round-robin"}))


HISTORY_COLUMNS = ("lead_id", "at", "actor", "action", "details")


def notification_rows(leads: int):
    for n in range(1, leads + 1):
        at = created(n, leads)
        yield (n, "confirm", "sms", "log", phone(n), f"Ваша заявка принята в работу. Номер {n}", "sent", 1, at, at, at)


NOTIFICATION_COLUMNS = ("lead_id", "rule", "channel", "sender", "to", "text", "status", "attempts",
                        "next_attempt_at", "created_at", "sent_at")


def tables(args: argparse.Namespace):
    leads, per_lead = args.leads, args.events_per_lead
    return [("leads", LEAD_COLUMNS, lead_rows(leads)), ("raw_events", EVENT_COLUMNS, event_rows(leads, per_lead)),
            ("touches", TOUCH_COLUMNS, touch_rows(leads, per_lead)), ("tasks", TASK_COLUMNS, task_rows(leads)),
            ("lead_history", HISTORY_COLUMNS, history_rows(leads)),
            ("notifications", NOTIFICATION_COLUMNS, notification_rows(leads))]


def quoted(columns: tuple) -> str:
    return ", ".join(f'"{column}"' for column in columns)  # "to" is a keyword


def sqlite_value(value):
    """As SQLAlchemy stores it on SQLite: naive UTC text for datetimes."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return value


def load_sqlite(engine, name: str, columns: tuple, rows) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("BEGIN")
        statement = f'INSERT INTO {name} ({quoted(columns)}) VALUES ({", ".join("?" * len(columns))})'
        batch = []
        for row in rows:
            batch.append(tuple(sqlite_value(v) for v in row))
            if len(batch) >= CHUNK:
                cursor.executemany(statement, batch)
                batch.clear()
        cursor.executemany(statement, batch)
        cursor.execute("COMMIT")
    finally:
        raw.close()


def load_postgres(engine, name: str, columns: tuple, rows) -> None:
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor, cursor.copy(f'COPY {name} ({quoted(columns)}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)
        if name == "leads":
            cursor = raw.cursor()
            cursor.execute("SELECT setval(pg_get_serial_sequence('leads', 'id'), (SELECT max(id) FROM leads))")
        raw.commit()
    finally:
        raw.close()


def build_store(url: str, args: argparse.Namespace, config) -> float:
    """Every table filled in bulk, and a console sign-in for each member; returns the seconds it took."""
    def console_users(session):
        digest = generate_password_hash(PASSWORD, method="scrypt")
        session.add_all(ConsoleUser(member_id=m["id"], password_hash=digest, updated_at=START) for m in config["team"])

    return load_store(url, tables(args), config["team"], console_users)


def load_store(url: str, tables, team: list[dict], before=None) -> float:
    """The team (and what ``before`` adds in the same transaction), then each of ``tables``
    ([(name, columns, rows)]) in bulk, then ANALYZE; returns the seconds it took."""
    engine = make_engine(url)
    started = time.perf_counter()
    with Database(engine).write() as session:
        sync_team(session, team)
        if before:
            before(session)
    load = load_sqlite if engine.dialect.name == "sqlite" else load_postgres
    for name, columns, rows in tables:
        began = time.perf_counter()
        load(engine, name, columns, rows)
        print(f"    {name}: {time.perf_counter() - began:.0f}s", flush=True)
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def fresh_database(url: str | None, folder: Path) -> str:
    if url is None:
        url = f"sqlite:///{folder / 'console.db'}"
        upgrade(url)
        return url
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


# -- the measurements ------------------------------------------------------------------------

def signed_in(app, member: str):
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/sign-in").text).group(1)
    answer = client.post("/console/sign-in", data={"login": member, "password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 302, answer.text[:500]
    return client


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]


def timed(request, count: int) -> list[float]:
    for number in range(10):  # warm-up
        request(number)
    samples = []
    for number in range(count):
        began = time.perf_counter()
        request(number)
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def checked(client, path: str, expect: str):
    answer = client.get(path)
    assert answer.status_code == 200 and expect in answer.text, (path, answer.status_code)


def page_requests(app, leads: int, seed: int = 11) -> dict:
    """What to time: name -> a function of the request number."""
    head, manager = signed_in(app, "vera"), signed_in(app, "anna")
    picks = [random.Random(seed + n).randint(1, leads) for n in range(100_000)]

    def by_phone(n):
        number = picks[n]
        digits = phone(number)[2:]
        checked(head, f"/console/leads?q=8+({digits[:3]})+{digits[3:6]}-{digits[6:8]}-{digits[8:]}",
                f'href="/console/leads/{number}"')

    return {
        "leads list, head (newest 50 of all)":
            lambda n: checked(head, "/console/leads", f'href="/console/leads/{leads}"'),
        "leads list, manager (own, newest 50)": lambda n: checked(manager, "/console/leads", 'rel="next"'),
        "leads list, status filter, page 2": lambda n: checked(
            head, f"/console/leads?status=in_progress&cursor=|{leads - 1000}", 'rel="next"'),
        "search by phone (8 (9xx) xxx-xx-xx)": by_phone,
        "lead card": lambda n: checked(head, f"/console/leads/{picks[n]}", f"№{picks[n]}"),
    }


def bare_select(hub, leads: int, seed: int = 11):
    picks = [random.Random(seed + n).randint(1, leads) for n in range(100_000)]
    statement = select(Lead.__table__).where(Lead.__table__.c.id == text(":id"))

    def request(n):
        with hub.db.engine.connect() as connection:
            assert connection.execute(statement, {"id": picks[n]}).first() is not None
    return request


def measure(url: str, args: argparse.Namespace, redis_url: str) -> None:
    config = load_config(document=bench_document())
    hub = context.Hub(config=config, db=Database(make_engine(url)),
                      kicker=Kicker(lambda: redis.Redis.from_url(redis_url)))
    hub.clock = lambda: START + timedelta(days=366)
    context.install(hub)
    app = create_app({"hub": hub, "secret_key": "bench"})
    with hub.db.read() as session:
        counted = {"leads": session.scalar(select(func.count()).select_from(Lead))}
    print(f"  store: {counted['leads']:,} leads")
    rows = [("bare primary-key SELECT (baseline)", timed(bare_select(hub, args.leads), args.requests))]
    rows += [(name, timed(request, args.requests)) for name, request in page_requests(app, args.leads).items()]
    print(f"  {'request':44} {'p50 ms':>8} {'p95 ms':>8}  target p95 < {TARGET_MS} ms")
    for name, samples in rows:
        p50, p95 = percentiles(samples)
        verdict = "" if name.startswith("bare") else ("ok" if p95 < TARGET_MS else "OVER")
        print(f"  {name:44} {p50:8.1f} {p95:8.1f}  {verdict}")
    hub.db.dispose()


def main() -> None:
    args = parse_args()
    extra = [os.environ["BENCH_POSTGRES_URL"]] if os.environ.get("BENCH_POSTGRES_URL") else []
    with tempfile.TemporaryDirectory(prefix="bench-console-") as folder:
        redis_url, server = start_redis(Path(folder))
        try:
            for url in [None, *dict.fromkeys(extra + args.database_url)]:
                target = fresh_database(url, Path(folder))
                print(f"== {make_engine(target).dialect.name}: building {args.leads:,} leads, "
                      f"{args.leads * args.events_per_lead:,} events", flush=True)
                seconds = build_store(target, args, load_config(document=bench_document()))
                print(f"  built in {seconds:.0f}s")
                measure(target, args, redis_url)
        finally:
            if server is not None:
                server.shutdown()


if __name__ == "__main__":
    main()
