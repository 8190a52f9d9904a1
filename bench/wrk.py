"""Drive an HTTP server with wrk: every request distinct, prepared here, counted by status.

The bench's request factory (request number -> path, body, headers) builds whole HTTP requests
before the run, one file per wrk thread; ``requests.lua`` hands them out in order and prints
the figures as one line that ``run`` reads. Preparing in advance keeps the Lua side trivial (no
HMAC, no URL encoding in the load generator) and its cost off the measured run.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "requests.lua"
Request = tuple[str, bytes, dict[str, str]]


@dataclass
class Load:
    """What one wrk run saw."""
    seconds: float
    statuses: dict[int, int]
    errors: dict[str, int]
    latency_ms: dict[str, float]
    repeats: int

    def count(self, statuses: tuple[int, ...]) -> int:
        return sum(self.statuses.get(status, 0) for status in statuses)

    def rate(self, statuses: tuple[int, ...]) -> float:
        return self.count(statuses) / self.seconds if self.seconds else 0.0

    def others(self, accepted: tuple[int, ...]) -> dict:
        found = {str(status): count for status, count in self.statuses.items() if status not in accepted}
        found.update({name: count for name, count in self.errors.items() if count})
        if self.repeats:
            found["requests repeated (prepare more)"] = self.repeats
        return found


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("the HTTP benchmarks drive the servers with wrk: apt-get install wrk")
    return path


def raw_request(request: Request, port: int) -> bytes:
    path, body, headers = request
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    if b"\0" in raw:
        raise ValueError("a prepared request may not contain a NUL byte (the file's separator)")
    return raw


def prepare(factory: Callable[[int], Request], numbers: range, threads: int, port: int, prefix: Path) -> Path:
    """Write ``numbers``' requests dealt round-robin into ``prefix.0`` .. ``prefix.<threads-1>``."""
    for thread in range(threads):
        with open(f"{prefix}.{thread}", "wb") as out:
            out.write(b"\0".join(raw_request(factory(number), port) for number in numbers[thread::threads]))
    return prefix


def run(port: int, seconds: float, threads: int, connections: int, prefix: Path, path: str = "/") -> Load:
    argv = [require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s",
            "-s", str(SCRIPT), f"http://127.0.0.1:{port}{path}", "--", str(prefix)]
    completed = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("WRK ")]
    if completed.returncode != 0 or not lines:
        raise SystemExit(f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    figures = json.loads(lines[-1][4:])
    return Load(seconds=figures["duration_us"] / 1e6,
                statuses={int(status): count for status, count in figures["statuses"].items()},
                errors=figures["errors"],
                latency_ms={name: value / 1000 for name, value in figures["latency_us"].items()},
                repeats=figures["repeats"])


def drive(factory: Callable[[int], Request], port: int, seconds: float, first: int, *, threads: int,
          connections: int, max_rate: float, folder: Path, name: str = "load") -> Load:
    """Prepare ``max_rate * seconds`` distinct requests numbered from ``first`` and run them."""
    numbers = range(first, first + int(max_rate * seconds) + connections)
    prefix = prepare(factory, numbers, threads, port, folder / f"{name}.requests")
    try:
        return run(port, seconds, threads, connections, prefix)
    finally:
        for thread in range(threads):
            Path(f"{prefix}.{thread}").unlink(missing_ok=True)
