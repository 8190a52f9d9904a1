"""The Flask app behind an asynchronous server (uvicorn): each request is read whole on the event
loop before the app runs, so a client that trickles its headers or body holds nothing and
cannot stall the intake.

Reading stops one byte past ``limits.body_bytes`` (the app then answers 413, as for any body
over the limit). A body that stops arriving for ``limits.body_timeout`` is handed over as it
is, marked incomplete, and the app answers 400. A client that goes away mid-body gets nothing
and nothing is stored.

The app then runs on the event loop itself (``HUB_WEB_THREADS=0``, the default: no thread
hop), in a greenlet (``hub.web.suspend``): an intake write is handed to the process's group
committer (``hub.store.groupcommit``) and the request waits for its commit without holding the
loop, so the loop goes on reading and checking other requests, whose writes join the next
group. With ``HUB_WEB_THREADS=N`` the app runs in a pool of N threads instead, each waiting for
its group in its thread. Either way the answer is collected, then sent.
"""
from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from urllib.parse import unquote_to_bytes

from hub.web import suspend
from hub.web.body import INCOMPLETE


class BufferedWSGI:
    def __init__(self, wsgi_app, body_limit: int, body_timeout: float, threads: int, committer=None):
        self.wsgi_app, self.body_limit, self.body_timeout = wsgi_app, body_limit, body_timeout
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="hub-web") if threads else None
        self.committer = committer

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        if scope["type"] != "http":
            return None
        body, complete = await self.read_body(receive)
        if body is None:
            return None  # the client went away: nothing to answer, nothing stored
        environ = wsgi_environ(scope, body)
        if not complete:
            environ[INCOMPLETE] = True
        if self.committer is not None:
            environ[suspend.GROUP_COMMIT] = self.committer
        if self.executor is None:
            status, headers, chunks = await suspend.run(call_wsgi, self.wsgi_app, environ)
        else:
            status, headers, chunks = await asyncio.get_running_loop().run_in_executor(
                self.executor, call_wsgi, self.wsgi_app, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(chunks)})
        return None

    async def read_body(self, receive) -> tuple[bytes | None, bool]:
        chunks, size = [], 0
        loop = asyncio.get_running_loop()
        try:
            # One timer per request, pushed back as each chunk arrives (not a task per chunk).
            async with asyncio.timeout(self.body_timeout) as timer:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None, False
                    chunk = message.get("body", b"")
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > self.body_limit or not message.get("more_body"):
                        return b"".join(chunks), True
                    timer.reschedule(loop.time() + self.body_timeout)
        except TimeoutError:
            return b"".join(chunks), False


async def lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def wsgi_environ(scope: dict, body: bytes) -> dict:
    """PEP 3333's environ for an ASGI HTTP scope and its whole body."""
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    server = scope.get("server") or ("127.0.0.1", 80)
    environ = {
        "REQUEST_METHOD": scope["method"], "SCRIPT_NAME": scope.get("root_path", ""),
        "PATH_INFO": unquote_to_bytes(raw_path.decode("latin-1")).decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]), "SERVER_PORT": str(server[1] or 80),
        "REMOTE_ADDR": (scope.get("client") or ("", 0))[0],
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0), "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.input_terminated": True,
    }
    for name, value in scope.get("headers", []):
        key = name.decode("latin-1").upper().replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"
        text = value.decode("latin-1")
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def call_wsgi(wsgi_app, environ: dict) -> tuple[int, list, list[bytes]]:
    """Run the app to the end of its answer: status, ASGI headers, body chunks."""
    state, written = {}, []

    def start_response(status, headers, exc_info=None):
        state["status"] = int(status.split(" ", 1)[0])
        state["headers"] = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        return written.append

    result = wsgi_app(environ, start_response)
    try:
        written.extend(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return state["status"], state["headers"], written


def serve():
    """The ASGI app ``hub web`` serves: the hub's Flask app, read whole before it runs, its
    intake writes committed in groups."""
    import os

    from hub.pipeline.heap import settle_heap
    from hub.store.groupcommit import committer_for
    from hub.web.app import create_app

    app = create_app()
    hub = app.extensions["hub"]
    hub.db.checkpoint_in_background()
    settle_heap(hub, pipeline=False)
    limits, threads = hub.config["limits"], int(os.environ.get("HUB_WEB_THREADS", "0"))
    return BufferedWSGI(app, limits["body_bytes"], limits["body_timeout"].total_seconds(), threads,
                        committer=committer_for(hub.db.intake, on_loop=not threads))
