"""Request bodies, read one way for every endpoint.

The size limit holds whatever the framing: a ``Content-Length`` over it is refused before a
byte is read, and a chunked body is read only until it runs past it. A body that ends before
its ``Content-Length`` (the client went away) is refused, never taken for the whole.
"""
from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from connectors.base import read_json
from hub.web.errors import HubError

READ_SIZE = 64 * 1024
INCOMPLETE = "hub.body_incomplete"  # environ key set by the server: the body stopped arriving


def read_body(request: Request, limit: int) -> bytes:
    """The whole body; 413 over ``limit`` bytes, 400 when shorter than its Content-Length or
    when the server cannot take its chunked framing apart."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(limit)
    if declared is None and not request.environ.get("wsgi.input_terminated"):
        return b""  # neither a length nor a server that ends the stream: nothing to read safely
    body = read_up_to(request.environ["wsgi.input"], declared if declared is not None else limit + 1)
    if len(body) > limit:
        raise too_large(limit)
    if declared is not None and len(body) < declared:
        raise HubError(400, "the body ended before its Content-Length",
                       {"body": f"{len(body)} of {declared} bytes arrived"})
    if request.environ.get(INCOMPLETE):
        raise HubError(400, "the body stopped arriving before its end",
                       {"body": f"nothing more came after {len(body)} bytes"})
    return body


def read_up_to(stream, size: int) -> bytes:
    chunks, received = [], 0
    while received < size:
        try:
            chunk = stream.read(min(READ_SIZE, size - received))
        except Exception as exc:  # servers raise their own types for broken chunked framing
            raise HubError(400, "the body could not be read", {"body": f"broken framing: {exc}"}) from exc
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


def too_large(limit: int) -> HubError:
    return HubError(413, f"request body over the size limit of {limit} bytes", {"body": "too large"})


def json_body(request: Request, limit: int) -> Any:
    """The body as a JSON document (``None`` when empty); 400 naming what is wrong otherwise."""
    body = read_body(request, limit)
    if not body.strip():
        return None
    try:
        return read_json(body.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError included
        raise HubError(400, "the body is not JSON", {"body": f"not JSON: {exc}"}) from exc
