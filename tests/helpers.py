"""What tests share besides fixtures: the fixture files, the sample config, a backlog of stored
events, a Zadarma call as the hub receives it, a free port, waiting for a condition, a real SMTP
server, the mailbox tests' mail and a stored raw e-mail."""
from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import urlencode

import yaml
from aiosmtpd.controller import Controller
from sqlalchemy import func, select, text

from hub.config import SAMPLE_CONFIG
from hub.reports import snapshots
from hub.runtime import scheduler
from hub.store.models import Lead, RawEvent, ReportChange, ReportSnapshot

from tests.connectors import signers

FIXTURES = Path(__file__).parent / "fixtures"
API_TOKEN = "test-token-0123456789"
ZADARMA_SECRET = "zadarma-secret-for-tests"
MAILBOX_SETTINGS = {"key": "sales", "username": "sales@example.com", "own_addresses": ["example.com"],
                    "company_phones": ["+7 495 123-45-67"], "region": "RU"}  # as the IMAP module reads them
IMAP_PASSWORD = "lead-hub-test-password"
IMAP_PASSWORD_ENV = "HUB_TEST_IMAP_PASSWORD"


def fixture_bytes(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def sample_document() -> dict:
    return yaml.safe_load(SAMPLE_CONFIG.read_text(encoding="utf-8"))


def insert_pending_forms(hub, phones: list[str], form: str = "landing") -> None:
    """A backlog of pending form events, as intake would have stored them."""
    now = hub.now()
    with hub.db.write() as session:
        session.add_all(RawEvent(
            channel="form", kind="forms", provider="generic", endpoint=form, method="POST",
            url=f"http://127.0.0.1/hooks/forms/{form}", received_at=now, status="pending",
            headers={"content-type": "application/x-www-form-urlencoded"},
            body=urlencode({"name": f"Client {i}", "phone": phone, "utm_source": "bench"}).encode())
            for i, phone in enumerate(phones))


def zadarma_signed(fields: dict) -> tuple[dict, dict]:
    """A Zadarma notification and the headers that sign it with ``ZADARMA_SECRET``."""
    return fields, {"Signature": signers.zadarma(urlencode(fields).encode(), ZADARMA_SECRET)}


def zadarma_call(call_id: str, outcome: str, caller: str = "79161234567") -> list[tuple[dict, dict]]:
    """The notifications of one inbound call to our tracked number, ``answered`` or ``missed``."""
    base = {"call_start": "2026-11-23 13:00:00", "pbx_call_id": call_id, "caller_id": caller,
            "called_did": "74951234567"}
    events = [zadarma_signed({**base, "event": "NOTIFY_START"}),
              zadarma_signed({**base, "event": "NOTIFY_INTERNAL", "internal": "101"})]
    if outcome == "answered":
        events.append(zadarma_signed({**base, "event": "NOTIFY_ANSWER", "destination": "101", "internal": "101"}))
    disposition, duration = ("answered", "95") if outcome == "answered" else ("no answer", "0")
    events.append(zadarma_signed({**base, "event": "NOTIFY_END", "disposition": disposition, "duration": duration,
                                  "last_internal": "101", "status_code": "16", "is_recorded": "0"}))
    return events


def post_zadarma(client, fields_and_headers):
    fields, headers = fields_and_headers
    response = client.post("/hooks/telephony/zadarma", data=fields, headers=headers)
    assert response.status_code in (200, 202), response.data
    return response


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def lead_message(number: int, to: str = "sales@example.com", message_id: str | None = None) -> bytes:
    """A plain lead e-mail from client ``number`` (its own address and phone)."""
    digits = f"{number:07d}"
    message_id = message_id or f"lead-{number}-{time.time_ns()}@example.org"
    return (f"From: Client {number} <client{number}@example.org>\r\nTo: {to}\r\n"
            f"Subject: Request {number}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0300\r\n"
            f"Message-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            f"Здравствуйте! Перезвоните мне: +7 916 {digits[:3]}-{digits[3:5]}-{digits[5:]}\r\n").encode()


class Inbox:
    def __init__(self):
        self.messages = []
        self.raw: list[bytes] = []  # the bytes of each message as they came over the wire
        self.recipients: list[list[str]] = []  # each message's envelope recipients
        self.refuse: dict[str, str] = {}  # recipient -> SMTP reply, e.g. "550 5.1.1 no such user"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd names the hooks)
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.raw.append(envelope.content)
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted"


class SmtpServer:
    """A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""

    def __init__(self):
        self.inbox = Inbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


def store_mail(hub, eml: str) -> str:
    with hub.db.write() as session:
        raw = RawEvent(channel="mail", kind="mail", provider="imap", endpoint="sales", method="IMAP",
                       url="imap://127.0.0.1/INBOX", headers={"content-type": "message/rfc822"},
                       body=fixture_bytes(f"mail/{eml}"), received_at=hub.now(), status="pending")
        session.add(raw)
    return raw.event_id


class Clock:
    """The hub's clock held at ``start``; ``at(moment)`` moves it there and lets the scheduler
    fire what is due by then."""

    def __init__(self, hub, start: datetime):
        self.hub, self.now = hub, start
        hub.clock = lambda: self.now

    def at(self, moment: datetime) -> None:
        self.now = moment
        scheduler.tick(self.hub)


def numbering_after_seeded_leads(session) -> None:
    """Leads seeded with chosen numbers leave PostgreSQL's sequence behind them (SQLite takes
    the highest number plus one by itself): move it past them, so the next lead made by the
    hub gets a free number."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT setval(pg_get_serial_sequence('leads', 'id'), (SELECT max(id) FROM leads))"))


def snapshot_every_day(hub) -> None:
    """Builds the report snapshot of every day with leads, and checks nothing is left to build."""
    built = snapshots.refresh(hub)
    with hub.db.read() as session:
        assert built and session.scalar(select(func.count()).select_from(ReportChange)) == 0
        days = session.scalars(select(ReportSnapshot.day).distinct()).all()
        created = session.scalars(select(Lead.created_at)).all()
    assert sorted(days) == sorted({f"{moment.astimezone(UTC):%Y-%m-%d}" for moment in created})
