"""The intake journal on SQLite: the intake commits to a file of its own and never waits for
the database's writer (the pipeline's batch); filings move its rows into raw_events in
arrival order, none lost and none twice, also when two filings race or one is cut short; and
a repeated delivery is found in either file. These run on SQLite whichever database the suite
is on: PostgreSQL has no journal."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from hub import context, create_app
from hub.store.db import Database, make_engine
from hub.store.journal import copy_into_store, journal_path
from hub.store.models import RawEvent

FORM = {"name": "Иван", "phone": "+7 916 123-45-67", "email": "ivan@example.com"}


@pytest.fixture
def sqlite_client(sqlite_hub):
    return create_app({"hub": sqlite_hub}).test_client()


def stored_ids(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(RawEvent.event_id).order_by(RawEvent.id)))


def journal_ids(db: Database) -> list[str]:
    with sqlite3.connect(db.journal.path) as connection:
        return [row[0] for row in connection.execute("SELECT event_id FROM intake_events ORDER BY id")]


def post_forms(client, count: int, first: int = 0) -> list[str]:
    ids = []
    for number in range(first, first + count):
        response = client.post("/hooks/forms/landing", data={**FORM, "phone": f"+7916555{number:04d}"})
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["event_id"])
    return ids


def test_the_journal_sits_beside_the_database(tmp_path):
    assert journal_path(str(tmp_path / "hub.db")) == str(tmp_path / "hub.intake.db")
    db = Database(make_engine("sqlite:///:memory:"))
    assert db.journal is None and db.intake is db and db.file_intake() == 0


def test_accepted_posts_wait_in_the_journal_and_are_filed_in_order(sqlite_hub, sqlite_client):
    accepted = post_forms(sqlite_client, 5)
    assert journal_ids(sqlite_hub.db) == accepted and stored_ids(sqlite_hub.db) == []
    assert sqlite_hub.db.file_intake() == 5
    assert stored_ids(sqlite_hub.db) == accepted and journal_ids(sqlite_hub.db) == []
    with sqlite_hub.db.read() as session:
        raw = session.scalar(select(RawEvent).where(RawEvent.event_id == accepted[0]))
    assert (raw.status, raw.channel, raw.endpoint, raw.attempts) == ("pending", "form", "landing", 0)
    assert raw.query == [] and raw.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"79165550000" in raw.body and raw.received_at.tzinfo is not None and raw.received_at <= sqlite_hub.now()


def test_a_filing_copies_at_most_its_limit(sqlite_hub, sqlite_client):
    accepted = post_forms(sqlite_client, 5)
    assert sqlite_hub.db.journal.file(limit=2) == 2
    assert stored_ids(sqlite_hub.db) == accepted[:2] and journal_ids(sqlite_hub.db) == accepted[2:]


def test_a_filing_cut_short_after_its_copy_files_nothing_twice(sqlite_hub, sqlite_client):
    accepted = post_forms(sqlite_client, 3)
    journal = sqlite_hub.db.journal
    with journal.engine.connect() as connection, connection.begin():
        connection.execute(copy_into_store(), {"last": 2})  # committed; the process dies before its delete
    assert stored_ids(sqlite_hub.db) == accepted[:2] and journal_ids(sqlite_hub.db) == accepted
    assert sqlite_hub.db.file_intake() == 3
    assert stored_ids(sqlite_hub.db) == accepted and journal_ids(sqlite_hub.db) == []


def test_racing_filings_and_posts_lose_nothing_and_copy_nothing_twice(sqlite_hub, sqlite_client):
    accepted, stop = [], threading.Event()

    def keep_filing():
        while not stop.is_set():
            sqlite_hub.db.file_intake()

    filers = [threading.Thread(target=keep_filing) for _ in range(2)]
    for filer in filers:
        filer.start()
    try:
        for block in range(10):
            accepted += post_forms(sqlite_client, 10, first=block * 10)
    finally:
        stop.set()
        for filer in filers:
            filer.join()
    sqlite_hub.db.file_intake()
    assert stored_ids(sqlite_hub.db) == accepted and journal_ids(sqlite_hub.db) == []


def test_a_repeated_form_is_a_duplicate_in_either_file(sqlite_hub, sqlite_client):
    first = sqlite_client.post("/hooks/forms/landing", data=FORM).get_json()["event_id"]
    again = sqlite_client.post("/hooks/forms/landing", data=FORM)  # the original still in the journal
    assert (again.status_code, again.get_json()) == (200, {"event_id": first, "status": "duplicate"})
    sqlite_hub.db.file_intake()
    filed = sqlite_client.post("/hooks/forms/landing", data=FORM)  # the original filed
    assert (filed.status_code, filed.get_json()) == (200, {"event_id": first, "status": "duplicate"})
    assert stored_ids(sqlite_hub.db) == [first] and journal_ids(sqlite_hub.db) == []


def test_the_intake_never_waits_for_the_databases_writer(sqlite_hub, sqlite_client):
    """The pipeline's batch holds the database's writer lock; a post is committed and
    answered meanwhile."""
    holding, release, answers = threading.Event(), threading.Event(), []

    def batch():
        with sqlite_hub.db.write():
            holding.set()
            release.wait(60)

    holder = threading.Thread(target=batch)
    holder.start()
    assert holding.wait(30)
    poster = threading.Thread(target=lambda: answers.extend(post_forms(sqlite_client, 3)))
    poster.start()
    poster.join(timeout=30)
    finished_while_held = not poster.is_alive() and not release.is_set()
    release.set()
    holder.join()
    poster.join()
    assert finished_while_held and len(journal_ids(sqlite_hub.db)) == 3


def test_an_event_looked_up_before_its_filing_is_filed_first(sqlite_hub, sqlite_client, api):
    event_id = post_forms(sqlite_client, 1)[0]
    found = sqlite_client.get(f"/api/events/{event_id}", headers=api.headers)
    assert found.status_code == 200 and found.get_json()["status"] == "pending"
    assert stored_ids(sqlite_hub.db) == [event_id] and journal_ids(sqlite_hub.db) == []
    assert sqlite_client.get("/api/events/" + "0" * 32, headers=api.headers).status_code == 404


def test_the_backlog_counts_unfiled_events_as_pending(sqlite_hub, sqlite_client):
    post_forms(sqlite_client, 2)
    text = sqlite_client.get("/metrics").get_data(as_text=True)
    assert 'hub_events_backlog{status="pending"} 2.0' in text


def test_an_upgrade_that_changes_the_journals_columns_files_the_old_rows_first(sqlite_hub):
    """A journal left by an earlier version (a column fewer) is filed with the columns both
    have, then made anew."""
    db = sqlite_hub.db
    with sqlite3.connect(db.journal.path) as connection:
        connection.execute("CREATE TABLE intake_events (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id, channel, "
                           "kind, provider, endpoint, delivery_key, fingerprint, method, url, subpath, query, "
                           "body, headers, remote_addr, received_at, attempts, status)")
        connection.execute("INSERT INTO intake_events VALUES (1, 'e1', 'form', 'forms', 'generic', 'landing', NULL, "
                           "NULL, 'POST', 'http://x/', '', '[]', x'7068', '{}', '127.0.0.1', "
                           "'2026-12-01 08:00:00.000000', 0, 'pending')")
    assert db.file_intake() == 0  # the old row went over as the journal was opened
    assert stored_ids(db) == ["e1"]
    with sqlite3.connect(db.journal.path) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(intake_events)")]
    assert columns[-1] == "error"


def test_an_upgrade_drops_the_index_an_earlier_journal_had_on_event_ids(sqlite_hub, sqlite_client):
    """Journals made before the intake stopped indexing event ids lose that index as they are
    opened; what they hold is filed and looked up as before."""
    db = sqlite_hub.db
    event_id = post_forms(sqlite_client, 1)[0]
    db.journal.dispose()
    with sqlite3.connect(db.journal.path) as connection:
        connection.execute("CREATE UNIQUE INDEX ix_intake_events_event_id ON intake_events (event_id)")
    assert db.journal.holds(event_id) and not db.journal.holds("0" * 32)
    with sqlite3.connect(db.journal.path) as connection:
        indexes = {row[1] for row in connection.execute("PRAGMA index_list(intake_events)")}
    assert indexes == {"ix_intake_events_delivery_key", "ix_intake_events_fingerprint"}
    assert db.file_intake() == 1 and stored_ids(db) == [event_id]


def test_the_hub_of_every_process_files(sqlite_hub, sqlite_client):
    """The pipeline files before its batches and the scheduler on every sweep."""
    from hub.pipeline import process_pending
    from hub.runtime import scheduler

    post_forms(sqlite_client, 2)
    assert process_pending(sqlite_hub).events == 2
    post_forms(sqlite_client, 1, first=2)
    assert scheduler.tick(sqlite_hub)["filed"] == 1
    with sqlite_hub.db.read() as session:
        assert session.scalar(select(func.count()).select_from(RawEvent)) == 3
    assert context.current() is sqlite_hub


def test_a_journal_that_cannot_commit_answers_503_and_claims_nothing(sqlite_hub, sqlite_client):
    def fail(connection):
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    event.listen(sqlite_hub.db.journal.engine, "commit", fail)
    try:
        response = sqlite_client.post("/hooks/forms/landing", data=FORM)
    finally:
        event.remove(sqlite_hub.db.journal.engine, "commit", fail)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "30")
    assert journal_ids(sqlite_hub.db) == [] and sqlite_hub.db.file_intake() == 0


def test_healthz_names_the_database_down_when_the_journal_cannot_be_opened(sqlite_hub, sqlite_client):
    assert sqlite_client.get("/healthz").get_json()["db"] == "ok"
    journal = sqlite_hub.db.journal
    journal.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(journal.path + suffix).unlink(missing_ok=True)
    Path(journal.path).mkdir()  # a file SQLite cannot open
    state = sqlite_client.get("/healthz")
    assert state.status_code == 503 and state.get_json()["db"].startswith("down")
    assert sqlite_client.post("/hooks/forms/landing", data=FORM).status_code == 503
