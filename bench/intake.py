"""Intake throughput: POST /hooks/forms/landing through `hub web`'s server (uvicorn), against a bare Flask app
served the same way and driven by the same load generator, in alternating rounds.

    python bench/intake.py [--seconds 10] [--workers 2] [--connections 16] [--rounds 3]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LANDING, form_body
from http_load import Bench, Request, main

PATH = "/hooks/forms/landing"
HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Referer": LANDING,
           "Accept": "application/json"}


def landing_post(number: int) -> Request:
    """A distinct submission (its own phone) for every number below 10**9."""
    return PATH, form_body(number), HEADERS


if __name__ == "__main__":
    main(Bench("intake", landing_post, accepted=(202,), target_ratio=0.45), __doc__)
