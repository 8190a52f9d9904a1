"""Intake through the server's group commit: concurrent form posts committed in one
transaction, each answered only after that commit; a commit that fails answers none of them
with a 2xx."""
from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from hub.store.groupcommit import committer_for
from hub.store.models import RawEvent
from hub.web.asgi import BufferedWSGI

POSTS = 8


def form(number: int) -> bytes:
    return urlencode({"name": f"Client {number}", "phone": f"+7916555{number:04d}",
                      "email": f"client{number}@example.com"}).encode()


async def post(server: BufferedWSGI, body: bytes) -> tuple[int, dict]:
    scope = {"type": "http", "method": "POST", "path": "/hooks/forms/landing", "raw_path": b"/hooks/forms/landing",
             "query_string": b"", "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8000),
             "client": ("10.0.0.7", 51000),
             "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"application/json"),
                         (b"content-type", b"application/x-www-form-urlencoded"),
                         (b"content-length", str(len(body)).encode())]}
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await server(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


def post_together(server: BufferedWSGI, count: int) -> list[tuple[int, dict]]:
    async def main():
        return await asyncio.gather(*[post(server, form(number)) for number in range(count)])
    return asyncio.run(main())


@pytest.fixture
def server(app, hub):
    committer = committer_for(hub.db.intake, on_loop=True)
    yield BufferedWSGI(app, 1024 * 1024, 5.0, threads=0, committer=committer)
    if hasattr(committer, "stop"):
        committer.stop()


def stored(hub) -> list[str]:
    hub.db.file_intake()  # on SQLite, from the intake journal into raw_events
    with hub.db.read() as session:
        return list(session.scalars(select(RawEvent.event_id)))


def test_concurrent_posts_share_one_commit_and_each_answer_names_a_committed_event(server, hub):
    answers = post_together(server, POSTS)
    assert [status for status, _ in answers] == [202] * POSTS
    assert sorted(body["event_id"] for _, body in answers) == sorted(stored(hub))
    assert server.committer.writes == POSTS
    assert server.committer.groups < POSTS  # several requests' rows went in one transaction


def test_a_failed_commit_acknowledges_no_request_of_its_group(server, hub):
    def fail(connection):
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    event.listen(hub.db.intake.engine, "commit", fail)
    try:
        answers = post_together(server, POSTS)
    finally:
        event.remove(hub.db.intake.engine, "commit", fail)
    assert [status for status, _ in answers] == [503] * POSTS
    assert stored(hub) == []
    with hub.db.read() as session:
        assert session.scalar(select(func.count()).select_from(RawEvent)) == 0
    assert server.committer.writes == 0
