"""The ASGI front: what the Flask app sees of a request read whole on the event loop."""
from __future__ import annotations

import asyncio

from hub.web.asgi import BufferedWSGI, wsgi_environ


def scope(**extra) -> dict:
    return {"type": "http", "method": "POST", "path": "/hooks/forms/лендинг", "http_version": "1.1",
            "raw_path": b"/hooks/forms/%D0%BB%D0%B5%D0%BD%D0%B4%D0%B8%D0%BD%D0%B3", "query_string": b"a=1&b=%20",
            "scheme": "http", "server": ("127.0.0.1", 8000), "client": ("10.0.0.7", 51000),
            "headers": [(b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", b"3"),
                        (b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2")], **extra}


def test_the_environ_is_pep_3333s():
    environ = wsgi_environ(scope(), b"a=1")
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/hooks/forms/лендинг"
    assert (environ["QUERY_STRING"], environ["REMOTE_ADDR"], environ["SERVER_PORT"]) == (
        "a=1&b=%20",
        "10.0.0.7",
        "8000",
    )
    assert (environ["CONTENT_TYPE"], environ["CONTENT_LENGTH"]) == ("application/x-www-form-urlencoded", "3")
    assert environ["HTTP_X_FORWARDED_FOR"] == "1.1.1.1,2.2.2.2"
    assert environ["wsgi.input"].read() == b"a=1" and environ["wsgi.input_terminated"] is True


def run(app: BufferedWSGI, messages: list[dict], delay: float = 0.0) -> list[dict]:
    sent = []

    async def receive():
        if not messages:
            await asyncio.sleep(3600)  # a client that sends nothing more
        await asyncio.sleep(delay)
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope(), receive, send))
    return sent


def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d %s" % (len(body), str(environ.get("hub.body_incomplete", False)).encode())]


def test_the_body_is_read_whole_then_handed_to_the_app():
    sent = run(
        BufferedWSGI(echo, 100, 5, threads=0),
        [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"c", "more_body": False},
        ],
    )
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"3 False"


def test_reading_stops_past_the_limit_and_at_a_pause_and_a_leaver_gets_nothing():
    over = run(BufferedWSGI(echo, 4, 5, threads=2), [{"type": "http.request", "body": b"x" * 3, "more_body": True}] * 3)
    assert over[1]["body"] == b"6 False"  # one chunk past the limit: the app's 413 to give
    stalled = run(
        BufferedWSGI(echo, 100, 0.05, threads=0), [{"type": "http.request", "body": b"ab", "more_body": True}]
    )
    assert stalled[1]["body"] == b"2 True"
    gone = run(
        BufferedWSGI(echo, 100, 5, threads=0),
        [{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}],
    )
    assert gone == []
