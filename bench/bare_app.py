"""The intake baseline: a Flask app that reads the body and answers, nothing else: 202 with a
small JSON body on the form route (as the hub answers forms), an empty 200 on any other POST
(as the hub answers telephony providers such as Zadarma)."""
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/hooks/forms/<key>")
def receive(key: str):
    request.get_data()
    response = jsonify({"status": "accepted"})
    response.status_code = 202
    return response


@app.post("/", defaults={"path": ""})
@app.post("/<path:path>")
def receive_any(path: str):
    request.get_data()
    return "", 200, {"Content-Type": "text/plain"}


def serve():
    """Served as ``hub web`` serves the hub (``hub.web.asgi``), with the same settings."""
    import os

    from hub.web.asgi import BufferedWSGI

    return BufferedWSGI(app, 1024 * 1024, 30.0, int(os.environ.get("HUB_WEB_THREADS", "0")))
