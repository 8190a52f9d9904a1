"""The mail poller (``hub mail poll``): one thread and one IMAP connection per mailbox.

Each pass reads the folder by UID above the checkpoint, in batches; a batch's raw events and
the checkpoint that covers them are committed in one transaction, so a crash anywhere re-reads
at most one batch, which the delivery keys (Message-ID) then skip. A changed UIDVALIDITY resets
the checkpoint and re-reads the folder, again deduplicated by delivery key. Only after the
commit does the optional action (\\Seen, move) touch the server; ``\\Seen`` is never relied on.
Health (last success, consecutive errors, messages behind) is kept on the checkpoint row.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from urllib.parse import quote

from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from hub import registry
from hub.config import resolve_secrets
from hub.store.models import Checkpoint, RawEvent, new_event_id

log = logging.getLogger("hub.mailpoll")
BACKOFF_BASE, BACKOFF_CAP = 1.0, 60.0  # seconds; doubled per consecutive failure
ONCE_ATTEMPTS = 3
PAUSE_HOOK = "HUB_TEST_PAUSE_BEFORE_COMMIT"  # tests only: sleep between fetch and commit
MAIL_LOCK = 0x4D61696C  # "Mail": one raw-event batch commit at a time on PostgreSQL


def run(hub, once: bool = False, stop: threading.Event | None = None) -> int:
    """Poll every configured mailbox; 0, or 1 when ``once`` and any mailbox failed."""
    if not hub.config["mailboxes"]:
        log.info("no mailboxes configured: nothing to poll")
        return 0
    stop = stop or threading.Event()
    pollers = [MailboxPoller(hub, key) for key in hub.config["mailboxes"]]
    for poller in pollers:
        poller.mark_started()
    if not once and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    log.info("polling %d mailboxes%s", len(pollers), " once" if once else "")
    threads = [threading.Thread(target=poller.poll_once if once else lambda p=poller: p.run(stop),
                                name=f"mail:{poller.key}") for poller in pollers]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():  # short joins keep the main thread responsive to signals
            thread.join(0.5)
    failed = [poller for poller in pollers if poller.failure]
    for poller in failed:
        print(f"mailbox {poller.key} failed: {poller.failure}", file=sys.stderr)
    return 1 if failed else 0


def backoff(failures: int) -> float:
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, failures - 1))


class MailboxPoller:
    def __init__(self, hub, key: str):
        self.hub, self.key = hub, key
        self.settings = resolve_secrets(hub.config["mailboxes"][key])
        self.folder = self.settings["folder"]
        self.imap = registry.intake("mail", "imap")
        self.client = None
        self.failure: str | None = None

    def mark_started(self) -> None:
        """The poller's start time, so /healthz can tell "not polled yet" from "never"."""
        with self.hub.db.write() as session:
            checkpoint_row(session, self.key, self.folder).updated_at = self.hub.now()

    def poll_once(self) -> None:
        for attempt in range(1, ONCE_ATTEMPTS + 1):
            try:
                self.connect()
                self.sync()
                self.failure = None
                return
            except Exception as exc:  # any failure: recorded, retried, then reported
                self.on_error(exc)
                if attempt < ONCE_ATTEMPTS:
                    time.sleep(backoff(attempt))
            finally:
                self.disconnect()

    def run(self, stop: threading.Event) -> None:
        failures = 0
        interval = self.settings["poll_interval"].total_seconds()
        while not stop.is_set():
            try:
                if self.client is None:
                    self.connect()
                self.sync()
                failures = 0
                self.imap.wait_for_mail(self.client, interval, stop)
            except Exception as exc:  # reconnect and resume from the checkpoint
                failures += 1
                self.on_error(exc)
                self.disconnect()
                stop.wait(backoff(failures))
        self.disconnect()

    def connect(self) -> None:
        timeout = self.settings["timeout"].total_seconds()
        self.client = self.imap.connect(self.settings, timeout=timeout)

    def disconnect(self) -> None:
        self.imap.close(self.client)
        self.client = None

    def on_error(self, exc: Exception) -> None:
        self.failure = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("mailbox %s: %s", self.key, self.failure, exc_info=log.isEnabledFor(logging.DEBUG))
        try:
            record_error(self.hub, self.key, self.folder, self.failure)
        except SQLAlchemyError as db_error:
            log.warning("mailbox %s: could not record the error: %s", self.key, db_error)

    def sync(self) -> None:
        """Fetch and commit everything above the checkpoint, batch by batch."""
        readonly = self.settings["after_commit"] == "keep"
        folder = self.imap.open_folder(self.client, self.folder, readonly=readonly)
        last_uid = prepare_checkpoint(self.hub, self.key, self.folder, folder.uidvalidity)
        uids = self.imap.uids_after(self.client, last_uid)
        size = self.settings["batch_size"]
        for start in range(0, len(uids), size):
            batch = uids[start:start + size]
            fetched = self.imap.fetch(self.client, batch)
            pause_before_commit()
            stored = commit_batch(self.hub, self.key, self.settings, folder.uidvalidity, batch, fetched,
                                  behind=uids[-1] - batch[-1])
            if stored:
                log.info("mailbox %s: %d new messages stored (UIDs %d-%d)", self.key, stored, batch[0], batch[-1])
                self.hub.kicker.kick("pipeline")
            self.imap.after_commit(self.client, [item.uid for item in fetched], self.settings)
        record_success(self.hub, self.key, self.folder)


def pause_before_commit() -> None:
    seconds = float(os.environ.get(PAUSE_HOOK) or 0)
    if seconds:
        log.warning("%s: sleeping %.1fs between fetch and commit", PAUSE_HOOK, seconds)
        time.sleep(seconds)


def checkpoint_row(session: Session, key: str, folder: str) -> Checkpoint:
    query = select(Checkpoint).where(Checkpoint.source == key, Checkpoint.folder == folder)
    row = session.scalar(query.with_for_update())
    if row is None:
        row = Checkpoint(source=key, folder=folder, last_uid=0, consecutive_errors=0, behind=0)
        session.add(row)
        session.flush()
    return row


def prepare_checkpoint(hub, key: str, folder: str, uidvalidity: int) -> int:
    """The UID to read above; resets it when the folder's UIDVALIDITY changed."""
    with hub.db.write() as session:
        row = checkpoint_row(session, key, folder)
        if row.uidvalidity is not None and row.uidvalidity != uidvalidity:
            log.warning("mailbox %s folder %s: UIDVALIDITY changed from %s to %s; re-reading the "
                        "folder from UID 1 (messages already stored are skipped by Message-ID)",
                        key, folder, row.uidvalidity, uidvalidity)
            row.last_uid = 0
        if row.uidvalidity != uidvalidity:
            row.uidvalidity = uidvalidity
            row.updated_at = hub.now()
        return row.last_uid


def commit_batch(hub, key: str, settings: dict, uidvalidity: int, uids: list[int], fetched: list,
                 behind: int) -> int:
    """Store the batch's new raw events and move the checkpoint past it, in one transaction.
    Returns how many events were new. A concurrent insert of the same message (another
    mailbox, another process) makes the commit fail once; the retry then skips it."""
    rows = [raw_event_row(hub, key, settings, uidvalidity, item) for item in fetched]
    for attempt in range(3):
        try:
            with hub.db.write() as session:
                if session.bind.dialect.name == "postgresql":  # as SQLite's BEGIN IMMEDIATE does:
                    # mailboxes holding the same messages must not deadlock on each other's keys
                    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MAIL_LOCK})
                row = checkpoint_row(session, key, settings["folder"])
                if row.uidvalidity != uidvalidity:
                    raise RuntimeError(f"checkpoint of {key} changed meanwhile; re-reading")
                new = skip_stored(session, rows)
                if new:  # a Core insert: the ORM's per-object bookkeeping is most of the cost
                    session.execute(insert(RawEvent), new)
                row.last_uid = max(row.last_uid, uids[-1])
                row.behind, row.updated_at = behind, hub.now()
            return len(new)
        except IntegrityError:
            if attempt == 2:
                raise
    return 0


def skip_stored(session: Session, rows: list[dict]) -> list[dict]:
    keys = [row["delivery_key"] for row in rows]
    stored = set(session.scalars(select(RawEvent.delivery_key).where(RawEvent.delivery_key.in_(keys))))
    new = []
    for row in rows:
        if row["delivery_key"] not in stored:
            stored.add(row["delivery_key"])
            new.append(row)
    return new


def raw_event_row(hub, key: str, settings: dict, uidvalidity: int, item) -> dict:
    """The raw_events row of one fetched message (no password anywhere: the URL names the host)."""
    headers = {"content-type": "message/rfc822", "x-imap-uid": str(item.uid),
               "x-imap-uidvalidity": str(uidvalidity)}
    if item.internaldate is not None:
        headers["x-imap-internaldate"] = item.internaldate.isoformat()
    imap = registry.intake("mail", "imap")
    return dict(
        event_id=new_event_id(), channel=imap.CHANNEL, kind=imap.KIND, provider=imap.NAME, endpoint=key,
        delivery_key=imap.delivery_key(item.raw)[:300], method="IMAP",
        url=f"imap://{settings['host']}/{quote(settings['folder'])};UID={item.uid}",
        subpath="", query=[], headers=headers, body=item.raw, received_at=hub.now(),
        status="pending", attempts=0)


def record_success(hub, key: str, folder: str) -> None:
    with hub.db.write() as session:
        row = checkpoint_row(session, key, folder)
        row.last_success_at = row.updated_at = hub.now()
        row.consecutive_errors, row.last_error, row.behind = 0, None, 0


def record_error(hub, key: str, folder: str, error: str) -> None:
    with hub.db.write() as session:
        row = checkpoint_row(session, key, folder)
        row.consecutive_errors = (row.consecutive_errors or 0) + 1
        row.last_error, row.updated_at = error, hub.now()
