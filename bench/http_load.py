"""HTTP load through the server `hub web` runs (uvicorn, each request read whole before the
Flask app runs): the hub and the bare Flask app (bench/bare_app.py) served the same way and
driven by the same load generator (wrk, bench/wrk.py), in alternating rounds, medians reported.

A bench names its requests (a factory: request number -> path, body, headers; every number
gives a distinct request), the statuses that count as accepted, its config and extra environment.
"""
from __future__ import annotations

import argparse
import http.client
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import wrk
from common import bench_document, free_port, median, start_redis, write_bench_config

from hub.store.journal import journal_path

BENCH_DIR = Path(__file__).resolve().parent
APPS = {"bare": "bare_app:serve", "hub": "hub.web.asgi:serve"}
Request = tuple[str, bytes, dict[str, str]]


@dataclass(frozen=True)
class Bench:
    name: str
    request: Callable[[int], Request]
    accepted: tuple[int, ...]
    target_ratio: float | None = None
    document: dict = field(default_factory=bench_document)
    env: dict[str, str] = field(default_factory=dict)

    def label(self) -> str:
        return "/".join(str(status) for status in self.accepted)


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per round")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--workers", type=int, default=2, help="web worker processes")
    add_load_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3, help="bare+hub pairs; medians reported")
    return parser.parse_args()


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connections", type=int, default=16, help="wrk's open connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--max-rate", type=float, default=16000,
                        help="requests/s prepared for (distinct requests made in advance)")


def start_server(app: str, workers: int, env: dict, folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--factory", "--workers", str(workers), "--port", str(port),
            "--http", "httptools", "--loop", "uvloop", "--no-access-log", "--log-level", "warning",
            "--app-dir", str(BENCH_DIR), APPS[app]]
    with open(folder / f"server-{app}.log", "wb") as log:
        process = subprocess.Popen(argv, env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    wait_ready(process, port, folder / f"server-{app}.log")
    return process, port


def wait_ready(process: subprocess.Popen, port: int, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/")
            connection.getresponse().read()
            connection.close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server on port {port} not ready after {timeout}s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stored_events(database: Path) -> dict[str, int]:
    """raw_events by status, and the deliveries still in the intake journal (no worker files
    them here)."""
    with sqlite3.connect(database) as connection:
        counts = dict(connection.execute("SELECT status, count(*) FROM raw_events GROUP BY status").fetchall())
    journal = Path(journal_path(str(database)))
    if journal.exists():
        with sqlite3.connect(journal) as connection:
            counts["in the intake journal"] = connection.execute("SELECT count(*) FROM intake_events").fetchone()[0]
    return counts


def prepare(bench: Bench, folder: Path, stack: ExitStack) -> dict:
    """The environment both servers run with: bench config, migrated SQLite, Redis."""
    redis_url, server = start_redis(folder)
    if server is not None:
        stack.callback(server.shutdown)
    config = write_bench_config(folder, bench.document)
    env = {**os.environ, **bench.env, "HUB_CONFIG": str(config), "HUB_LOG_LEVEL": "WARNING",
           "DATABASE_URL": f"sqlite:///{folder / 'hub.db'}", "REDIS_URL": redis_url}
    subprocess.run([sys.executable, "-m", "hub", "db", "upgrade"], env=env, cwd=folder, check=True,
                   stdout=subprocess.DEVNULL)
    return env


class Numbers:
    """Hands out blocks of request numbers: no request is ever sent twice in a run."""

    def __init__(self):
        self.next = 0

    def take(self, seconds: float, args: argparse.Namespace) -> int:
        first = self.next
        self.next += int(args.max_rate * seconds) + args.connections
        return first


def load(bench: Bench, port: int, seconds: float, numbers: Numbers, args, folder: Path) -> wrk.Load:
    return wrk.drive(bench.request, port, seconds, numbers.take(seconds, args), threads=args.threads,
                     connections=args.connections, max_rate=args.max_rate, folder=folder)


def measure(bench: Bench, ports: dict[str, int], args: argparse.Namespace, folder: Path) -> tuple[dict, Counter]:
    figures, hub_statuses, numbers = {"bare": [], "hub": []}, Counter(), Numbers()
    for run in range(args.rounds):
        for name in ("bare", "hub"):
            if args.warmup:
                warm = load(bench, ports[name], args.warmup, numbers, args, folder)
                if name == "hub":
                    hub_statuses.update(warm.statuses)
            measured = load(bench, ports[name], args.seconds, numbers, args, folder)
            figures[name].append(measured.rate(bench.accepted))
            if name == "hub":
                hub_statuses.update(measured.statuses)
            print(f"round {run + 1} {name:4}: {measured.rate(bench.accepted):8.1f} req/s"
                  f"  ({bench.label()}: {measured.count(bench.accepted)}, p50 {measured.latency_ms['p50']:.1f} ms,"
                  f" p99 {measured.latency_ms['p99']:.1f} ms, other: {measured.others(bench.accepted) or 'none'})",
                  flush=True)
    return figures, hub_statuses


def report(bench: Bench, figures: dict, hub_statuses: Counter, stored: dict[str, int], runs: int,
           connections: int) -> None:
    bare, hub = median(figures["bare"]), median(figures["hub"])
    ratio = hub / bare if bare else 0.0
    print(f"\nmedian bare: {bare:8.1f} req/s")
    print(f"median hub : {hub:8.1f} req/s")
    paired = median([h / b for b, h in zip(figures["bare"], figures["hub"], strict=True) if b])
    line = f"ratio hub/bare: {ratio:.2f} (median of per-round ratios {paired:.2f}"
    if bench.target_ratio is None:
        print(line + ")")
    else:
        verdict = "ok" if ratio >= bench.target_ratio else "BELOW TARGET"
        print(f"{line}; target >= {bench.target_ratio}) -> {verdict}")
    total, accepted = sum(stored.values()), sum(hub_statuses[status] for status in bench.accepted)
    # wrk stops with up to one request per connection in flight: committed, its answer unread
    check = "ok" if 0 <= total - accepted <= runs * connections else "MISMATCH"
    print(f"raw_events stored: {total} {stored}; {bench.label()}s counted: {accepted}"
          f" ({total - accepted} in flight as wrk stopped, at most {runs * connections}) -> {check}")


def main(bench: Bench, description: str) -> None:
    args = parse_args(description)
    wrk.require_wrk()
    print(f"uvicorn --workers {args.workers}, wrk -t{args.threads} -c{args.connections}, "
          f"{args.warmup:g}s warm-up + {args.seconds:g}s measured, {args.rounds} rounds", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"bench-{bench.name}-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        env = prepare(bench, folder, stack)
        ports = {}
        for name in ("bare", "hub"):
            process, ports[name] = start_server(name, args.workers, env, folder)
            stack.callback(stop, process)
        figures, hub_statuses = measure(bench, ports, args, folder)
        runs = args.rounds * (2 if args.warmup else 1)
        report(bench, figures, hub_statuses, stored_events(folder / "hub.db"), runs, args.connections)
