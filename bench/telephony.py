"""Telephony throughput: signed Zadarma call notifications (NOTIFY_START, NOTIFY_INTERNAL,
NOTIFY_ANSWER, NOTIFY_END of many distinct calls) posted to /hooks/telephony/zadarma under
uvicorn, against a bare Flask app served the same way and driven by the same load generator,
in alternating rounds.

    python bench/telephony.py [--seconds 10] [--workers 2] [--connections 16] [--rounds 3]
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import sys
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_document
from http_load import Bench, Request, main

PATH = "/hooks/telephony/zadarma"
SECRET_ENV, SECRET = "ZADARMA_SECRET", "bench-zadarma-secret"
HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
TRACKING_NUMBER, FIRST_CALL_AT = "74951234567", datetime(2026, 11, 23, 9, 0)


def call_event(call: int, step: int) -> dict[str, str]:
    """Event ``step`` (0-3) of call number ``call``. Odd calls are missed: where an even call is
    answered (NOTIFY_ANSWER), they ring a second extension."""
    base = {"call_start": f"{FIRST_CALL_AT + timedelta(seconds=call):%Y-%m-%d %H:%M:%S}",
            "pbx_call_id": f"in_{call:040x}", "caller_id": f"79{call:09d}", "called_did": TRACKING_NUMBER}
    missed = call % 2 == 1
    if step == 0:
        return {**base, "event": "NOTIFY_START"}
    if step == 1 or (step == 2 and missed):
        return {**base, "event": "NOTIFY_INTERNAL", "internal": "102" if step == 2 else "101"}
    if step == 2:
        return {**base, "event": "NOTIFY_ANSWER", "destination": "101", "internal": "101"}
    return {**base, "event": "NOTIFY_END", "disposition": "no answer" if missed else "answered",
            "duration": "0" if missed else "95", "last_internal": "102" if missed else "101",
            "status_code": "16", "is_recorded": "0"}


def signature(fields: dict[str, str]) -> str:
    """Zadarma's: base64 of the lower-case hex HMAC-SHA1 of the fields its event signs."""
    second = "destination" if fields["event"] == "NOTIFY_ANSWER" else "called_did"
    text = fields["caller_id"] + fields[second] + fields["call_start"]
    digest = hmac.new(SECRET.encode(), text.encode(), hashlib.sha1).hexdigest()
    return base64.b64encode(digest.encode()).decode()


def zadarma_post(number: int) -> Request:
    """Request ``number`` is event ``number % 4`` of call ``number // 4``: each posted once."""
    fields = call_event(number // 4, number % 4)
    return PATH, urlencode(fields).encode(), {**HEADERS, "Signature": signature(fields)}


def document() -> dict:
    return bench_document() | {"telephony": {"zadarma": {"secret_env": SECRET_ENV}}}


if __name__ == "__main__":
    main(Bench("telephony", zadarma_post, accepted=(200,), document=document(),
               env={SECRET_ENV: SECRET}), __doc__)
