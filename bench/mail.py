"""Mail throughput: a local Dovecot mailbox of N messages read by the poller into committed raw
events, and on by the pipeline into leads (the pipeline alone, and end to end with the poller
and a worker running side by side); beside it, in the same run and from the same mailbox, a
bare imapclient fetch and a bare fetch + ``email`` parse (policy.default). Two corpora: plain
one-line text messages, and typical ones as web mail clients send them.

    python bench/mail.py [--messages 5000] [--batch-size 200] [--rounds 3] [--corpus both] [--profile]

Needs dovecot (as in tests/mail/conftest.py, whose Dovecot helper this reuses).
"""
from __future__ import annotations

import argparse
import cProfile
import email
import logging
import multiprocessing
import os
import pstats
import shutil
import sys
import tempfile
import time
from email import policy
from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formataddr
from pathlib import Path

from imapclient import IMAPClient
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import bench_document, median, rate, start_redis  # noqa: E402

from connectors.mail.parse import html_to_text  # noqa: E402
from hub import context  # noqa: E402
from hub.config import load_config  # noqa: E402
from hub.pipeline import process_pending  # noqa: E402
from hub.pipeline.heap import settle_heap  # noqa: E402
from hub.pipeline.normalise import normalise  # noqa: E402
from hub.runtime import mailpoll  # noqa: E402
from hub.store.migrate import upgrade  # noqa: E402
from hub.store.models import Lead, RawEvent  # noqa: E402

from tests.mail.conftest import PASSWORD, PASSWORD_ENV, lead_message, new_dovecot  # noqa: E402

TARGET_RAW_RATIO = 0.3  # raw events/s over bare fetch/s
UTF8_QP = Charset("utf-8")
UTF8_QP.body_encoding = QP
HTML_BODY = """<div dir="ltr"><div>Здравствуйте!</div><div><br></div><div>Хотим заказать у вас {item} для офиса
на {people} человек, нужна доставка и монтаж в&nbsp;Москве. Пришлите, пожалуйста, коммерческое
предложение и сроки. Можно позвонить после 14:00.</div><div><br></div><div>--</div>
<div>С уважением,<br>{name}<br>менеджер по закупкам<br>ООО &laquo;Ромашка&raquo;<br>
тел. +7 (916) {a}-{b}-{c}</div></div>"""
TARGET_LEADS_RATIO = 1.0  # leads/s over bare fetch+parse/s


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=200, help="the mailbox's batch_size, also for bare fetches")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all four; medians reported")
    parser.add_argument("--corpus", choices=[*CORPORA, "both"], default="both",
                        help="plain: one-line text messages; typical: as web mail clients send them")
    parser.add_argument("--profile", action="store_true", help="cProfile the first poller and pipeline runs")
    return parser.parse_args()


def typical_message(number: int) -> bytes:
    """A lead as a web mail client sends it and a mail server delivers it: a trace of
    ``Received`` and authentication headers, an RFC 2047 subject and sender name, and
    ``multipart/alternative`` with quoted-printable plain text and HTML (about 4 KB)."""
    digits = f"{number:07d}"
    values = {"item": "мебель", "people": 40 + number % 60, "name": f"Ирина Клиентова {number}",
              "a": digits[:3], "b": digits[3:5], "c": digits[5:]}
    html = HTML_BODY.format(**values)
    message = MIMEMultipart("alternative")
    message.attach(MIMEText(html_to_text(html), "plain", UTF8_QP))
    message.attach(MIMEText(html, "html", UTF8_QP))
    message["From"] = formataddr((values["name"], f"client{number}@example.org"), charset="utf-8")
    message["To"] = "sales@example.com"
    message["Subject"] = Header(f"Запрос коммерческого предложения №{number}", "utf-8")
    message["Date"] = "Mon, 23 Nov 2026 10:00:00 +0300"
    message["Message-ID"] = f"<typical-{number}-{time.time_ns()}@example.org>"
    message["X-Mailer"] = "Webmail 2026"
    host = f"mx{number % 4}.example.net"
    trace = "".join(f"Received: from relay{hop}.example.org (relay{hop}.example.org [192.0.2.{hop + 10}])\r\n"
                    f"\tby {host} with ESMTPS id {number:x}{hop}; Mon, 23 Nov 2026 10:00:0{hop} +0300\r\n"
                    for hop in range(3))
    trace += (f"Authentication-Results: {host}; dkim=pass header.d=example.org; spf=pass\r\n"
              "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=mail;\r\n"
              f"\th=from:to:subject:date:message-id; bh={'A' * 44};\r\n\tb={'B' * 64}\r\n"
              + "".join(f"\t{'B' * 70}\r\n" for _ in range(4)))
    return trace.encode("ascii") + message.as_bytes(policy=compat32.clone(linesep="\r\n"))


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


def build_hub(folder: Path, name: str, mailbox: dict, redis_url: str, migrate: bool = True):
    url = f"sqlite:///{folder / name}.db"
    if migrate:
        upgrade(url)
    document = bench_document() | {"mailboxes": {"bench": mailbox}}
    hub = context.build(load_config(document=document), url, redis_url)
    context.install(hub)
    return hub


def count_rows(hub) -> dict:
    with hub.db.read() as session:
        return {"raw events": session.scalar(select(func.count()).select_from(RawEvent)),
                "processed": session.scalar(select(func.count()).where(RawEvent.status == "processed")),
                "leads": session.scalar(select(func.count()).select_from(Lead))}


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


def hub_round(folder: Path, name: str, mailbox: dict, redis_url: str, profile: bool) -> tuple[float, ...]:
    """(seconds to committed raw events, seconds in parse + mapping, seconds on to leads, counts)."""
    hub = build_hub(folder, name, mailbox, redis_url)
    try:
        poll = timed(lambda: mailpoll.MailboxPoller(hub, "bench").poll_once(), profile)
        parse_map = normalise_only(hub)
        settle_heap(hub)  # as the worker does before its first job
        pipeline = timed(lambda: process_pending(hub, max_seconds=3600), profile)
        return poll, parse_map, pipeline, count_rows(hub)
    finally:
        hub.db.dispose()


def end_to_end_round(folder: Path, name: str, mailbox: dict, redis_url: str, messages: int) -> tuple[float, dict]:
    """(seconds from the first fetch to the last lead, counts) with the poller and a worker in
    two processes side by side, as ``hub run`` runs them; the worker has started before the
    clock does, and takes each batch the poller commits as soon as it is there."""
    name = f"{name}-end-to-end"
    upgrade(f"sqlite:///{folder / name}.db")
    fork = multiprocessing.get_context("fork")
    ready, go = fork.Event(), fork.Event()
    worker = fork.Process(target=drain, args=(folder, name, mailbox, redis_url, messages, ready, go))
    worker.start()
    ready.wait(60)
    poller = fork.Process(target=poll, args=(folder, name, mailbox, redis_url, go))
    poller.start()
    started = time.perf_counter()
    go.set()
    poller.join()
    worker.join()
    elapsed = time.perf_counter() - started
    hub = build_hub(folder, name, mailbox, redis_url, migrate=False)
    try:
        return elapsed, count_rows(hub)
    finally:
        hub.db.dispose()


def poll(folder: Path, name: str, mailbox: dict, redis_url: str, go) -> None:
    hub = build_hub(folder, name, mailbox, redis_url, migrate=False)
    go.wait(60)
    mailpoll.MailboxPoller(hub, "bench").poll_once()


def drain(folder: Path, name: str, mailbox: dict, redis_url: str, messages: int, ready, go) -> None:
    hub = build_hub(folder, name, mailbox, redis_url, migrate=False)
    settle_heap(hub)
    ready.set()
    go.wait(60)
    done, deadline = 0, time.monotonic() + 600
    while done < messages and time.monotonic() < deadline:
        processed = process_pending(hub, max_seconds=3600).events
        done += processed
        if not processed:
            time.sleep(0.005)


CORPORA = {"plain": lead_message, "typical": typical_message}


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ[PASSWORD_ENV] = PASSWORD
    folder = Path(tempfile.mkdtemp(prefix="hub-bench-mail-"))
    server = new_dovecot()
    redis_url, redis_server = start_redis(folder)
    try:
        corpora = list(CORPORA) if args.corpus == "both" else [args.corpus]
        for corpus in corpora:
            medians = bench_corpus(server, folder, redis_url, corpus, args)
            report(medians, corpus, args)
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
        if redis_server is not None:
            redis_server.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


def bench_corpus(server, folder: Path, redis_url: str, corpus: str, args) -> dict:
    user = server.add_user()
    started = time.perf_counter()
    messages = [CORPORA[corpus](n) for n in range(args.messages)]
    server.deliver(user, messages)
    print(f"\n== {corpus}: {args.messages} messages of {median([len(m) for m in messages]):.0f} bytes "
          f"appended to a local Dovecot in {time.perf_counter() - started:.1f}s", flush=True)
    mailbox = server.mailbox(user, batch_size=args.batch_size)
    figures = {"fetch": [], "fetch+parse": [], "raw events": [], "parse+map": [], "leads": [], "end to end": []}
    expected = {"raw events": args.messages, "processed": args.messages, "leads": args.messages}
    for run in range(args.rounds):
        fetch = bare_fetch(server, user, args.batch_size, parse=False)
        fetch_parse = bare_fetch(server, user, args.batch_size, parse=True)
        name = f"{corpus}{run}"
        *seconds, found = hub_round(folder, name, mailbox, redis_url, args.profile and run == 0)
        both_ways, found_end_to_end = end_to_end_round(folder, name, mailbox, redis_url, args.messages)
        ok = found == expected and found_end_to_end == expected
        for key, elapsed in zip(figures, (fetch, fetch_parse, *seconds, both_ways), strict=True):
            figures[key].append(rate(args.messages, elapsed))
        print(f"round {run + 1}: " + ", ".join(f"{key} {values[-1]:.0f}/s" for key, values in figures.items())
              + f"; {found} {'ok' if ok else 'MISMATCH'}", flush=True)
    return {key: median(values) for key, values in figures.items()}


def report(medians: dict, corpus: str, args) -> None:
    raw_ratio = medians["raw events"] / medians["fetch"]
    leads_ratio = medians["leads"] / medians["fetch+parse"]
    print(f"\n{corpus}: medians over {args.rounds} rounds, {args.messages} messages, batches of {args.batch_size}:")
    for key, value in medians.items():
        print(f"  {key:>12}: {value:8.0f} messages/s")
    print(f"  raw events / bare fetch       = {raw_ratio:.2f} (aim >= {TARGET_RAW_RATIO})")
    print(f"  leads / bare fetch+parse      = {leads_ratio:.2f} (aim >= {TARGET_LEADS_RATIO})")
    print(f"  end to end / bare fetch+parse = {medians['end to end'] / medians['fetch+parse']:.2f} "
          f"(mailbox to leads, poller and worker side by side)")
    print(f"  (of the pipeline, the mail connector's parse + mapping alone: "
          f"{medians['parse+map'] / medians['fetch+parse']:.2f} x bare fetch+parse)")


if __name__ == "__main__":
    main()
