"""Mail throughput: a local Dovecot mailbox of N messages read by the poller into committed raw
events, and on by the pipeline into leads; beside it, in the same run and from the same
mailbox, a bare imapclient fetch and a bare fetch + ``email`` parse (policy.default).

    python bench/mail.py [--messages 5000] [--batch-size 200] [--rounds 3] [--profile]

Needs dovecot (as in tests/mail/conftest.py, whose Dovecot helper this reuses).
"""
from __future__ import annotations

import argparse
import cProfile
import email
import logging
import os
import pstats
import shutil
import sys
import tempfile
import time
from email import policy
from pathlib import Path

from imapclient import IMAPClient
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import bench_document, median, rate, start_redis  # noqa: E402

from hub import context, mailpoll  # noqa: E402
from hub.config import load_config  # noqa: E402
from hub.migrate import upgrade  # noqa: E402
from hub.models import Lead, RawEvent  # noqa: E402
from hub.pipeline import process_pending  # noqa: E402
from hub.pipeline.normalise import normalise  # noqa: E402
from hub.serve import settle_heap  # noqa: E402
from tests.mail.conftest import PASSWORD, PASSWORD_ENV, lead_message, new_dovecot  # noqa: E402

TARGET_RAW_RATIO = 0.3  # raw events/s over bare fetch/s
TARGET_LEADS_RATIO = 1.0  # leads/s over bare fetch+parse/s


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=200, help="the mailbox's batch_size, also for bare fetches")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all four; medians reported")
    parser.add_argument("--profile", action="store_true", help="cProfile the first poller and pipeline runs")
    return parser.parse_args()


def bare_fetch(server, user: str, batch: int, parse: bool) -> float:
    """Seconds to fetch (and optionally parse) every message, as a minimal client would."""
    started = time.perf_counter()
    with IMAPClient("127.0.0.1", port=server.port, ssl=False, timeout=30) as client:
        client.login(user, PASSWORD)
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search(["UID", "1:*"]))
        for first in range(0, len(uids), batch):
            for data in client.fetch(uids[first:first + batch], ["BODY.PEEK[]", "INTERNALDATE"]).values():
                if parse:
                    message = email.message_from_bytes(data[b"BODY[]"], policy=policy.default)
                    message.get_body(preferencelist=("plain", "html")).get_content()
    return time.perf_counter() - started


def build_hub(folder: Path, name: str, mailbox: dict, redis_url: str):
    url = f"sqlite:///{folder / name}.db"
    upgrade(url)
    document = bench_document() | {"mailboxes": {"bench": mailbox}}
    hub = context.build(load_config(document=document), url, redis_url)
    context.install(hub)
    return hub


def timed(function, profile: bool) -> float:
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    function()
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    if profiler:
        pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("tottime").print_stats(20)
    return elapsed


def normalise_only(hub) -> float:
    """Seconds the pipeline spends in the mail connector's parse and the mapping alone."""
    with hub.db.read() as session:
        stored = list(session.scalars(select(RawEvent)))
    started = time.perf_counter()
    for raw in stored:
        normalise(hub.config, raw)
    return time.perf_counter() - started


def hub_round(folder: Path, run: int, mailbox: dict, redis_url: str, profile: bool) -> tuple[float, ...]:
    """(seconds to committed raw events, seconds in parse + mapping, seconds on to leads, counts)."""
    hub = build_hub(folder, f"round{run}", mailbox, redis_url)
    try:
        poll = timed(lambda: mailpoll.MailboxPoller(hub, "bench").poll_once(), profile)
        parse_map = normalise_only(hub)
        settle_heap(hub)  # as the worker does before its first job
        pipeline = timed(lambda: process_pending(hub, max_seconds=3600), profile)
        with hub.db.read() as session:
            found = {"raw events": session.scalar(select(func.count()).select_from(RawEvent)),
                     "processed": session.scalar(select(func.count()).where(RawEvent.status == "processed")),
                     "leads": session.scalar(select(func.count()).select_from(Lead))}
        return poll, parse_map, pipeline, found
    finally:
        hub.db.dispose()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ[PASSWORD_ENV] = PASSWORD
    folder = Path(tempfile.mkdtemp(prefix="hub-bench-mail-"))
    server = new_dovecot()
    redis_url, redis_server = start_redis(folder)
    try:
        user = server.add_user()
        started = time.perf_counter()
        server.deliver(user, [lead_message(n) for n in range(args.messages)])
        print(f"{args.messages} messages appended to a local Dovecot in {time.perf_counter() - started:.1f}s")
        mailbox = server.mailbox(user, batch_size=args.batch_size)
        figures = {"fetch": [], "fetch+parse": [], "raw events": [], "parse+map": [], "leads": []}
        for run in range(args.rounds):
            fetch = bare_fetch(server, user, args.batch_size, parse=False)
            fetch_parse = bare_fetch(server, user, args.batch_size, parse=True)
            *seconds, found = hub_round(folder, run, mailbox, redis_url, args.profile and run == 0)
            ok = found == {"raw events": args.messages, "processed": args.messages, "leads": args.messages}
            for key, elapsed in zip(figures, (fetch, fetch_parse, *seconds)):
                figures[key].append(rate(args.messages, elapsed))
            print(f"round {run + 1}: " + ", ".join(f"{key} {values[-1]:.0f}/s" for key, values in figures.items())
                  + f"; {found} {'ok' if ok else 'MISMATCH'}", flush=True)
        report({key: median(values) for key, values in figures.items()}, args)
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
        if redis_server is not None:
            redis_server.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


def report(medians: dict, args) -> None:
    raw_ratio = medians["raw events"] / medians["fetch"]
    leads_ratio = medians["leads"] / medians["fetch+parse"]
    print(f"\nmedians over {args.rounds} rounds, {args.messages} messages, batches of {args.batch_size}:")
    for key, value in medians.items():
        print(f"  {key:>12}: {value:8.0f} messages/s")
    print(f"  raw events / bare fetch       = {raw_ratio:.2f} (aim >= {TARGET_RAW_RATIO})")
    print(f"  leads / bare fetch+parse      = {leads_ratio:.2f} (aim >= {TARGET_LEADS_RATIO})")
    print(f"  (of the pipeline, the mail connector's parse + mapping alone: "
          f"{medians['parse+map'] / medians['fetch+parse']:.2f} x bare fetch+parse)")


if __name__ == "__main__":
    main()
