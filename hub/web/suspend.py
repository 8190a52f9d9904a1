"""The Flask app runs on the event loop, yet a request may wait for its commit without holding
the loop: the app runs in a greenlet, and waiting switches back to the loop's task, which awaits
the commit and switches in again with its outcome. Other requests run meanwhile.

Outside such a greenlet (a thread pool, the test client, a plain WSGI server) waiting simply
blocks the calling thread.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any

from greenlet import getcurrent, greenlet

GROUP_COMMIT = "hub.group_commit"  # environ key: the server's committer for intake writes


class AppGreenlet(greenlet):
    """A request's run of the app, started by ``run``."""


async def run(function, *args) -> Any:
    """``function(*args)`` on this thread; each ``wait`` inside it awaits without blocking the loop."""
    child = AppGreenlet(function)
    awaited = child.switch(*args)
    while not child.dead:
        try:
            outcome = await awaited
        except BaseException as error:  # handed to the app, which decides what it means
            awaited = child.throw(error)
        else:
            awaited = child.switch(outcome)
    return awaited


def wait(future: Future | asyncio.Future) -> Any:
    """The future's result, waiting for it as the caller's context allows: an asyncio future
    only from the app's greenlet on its loop, a ``concurrent.futures.Future`` from anywhere."""
    current = getcurrent()
    in_greenlet = isinstance(current, AppGreenlet) and current.parent is not None
    if isinstance(future, asyncio.Future):
        if not in_greenlet:
            raise RuntimeError("an asyncio future is waited for only by the app run on its loop")
        return current.parent.switch(future)
    if in_greenlet:
        return current.parent.switch(asyncio.wrap_future(future))
    return future.result()
