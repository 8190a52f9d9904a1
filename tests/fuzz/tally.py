"""How many inputs the property tests tried in this run, and how many got a 5xx."""
from __future__ import annotations

TALLY = {"inputs": 0, "server_errors": 0}


def tried(status: int | None = None) -> None:
    """Count one input (and, with an HTTP status, whether the server failed on it)."""
    TALLY["inputs"] += 1
    if status is not None and status >= 500:
        TALLY["server_errors"] += 1
