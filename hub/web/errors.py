"""Every error leaves as JSON: ``{"error": "...", "fields": {"<field>": "..."}}``."""
from __future__ import annotations

import json

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

# What the framework's own errors (no route, a method no route takes) are about.
HTTP_FIELDS = {404: {"path": "no such endpoint"}, 405: {"method": "not allowed here"},
               413: {"body": "too large"}}


class HubError(Exception):
    def __init__(self, status: int, message: str, fields: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message = status, message
        self.fields = fields or {}
        self.headers = headers or {}


def json_error(status: int, message: str, fields: dict[str, str] | None = None) -> Response:
    """The error as the app's JSON answers are written (compact, UTF-8), with or without an app
    context: the intake answers outside Flask's (``hub.web.receive``)."""
    document = json.dumps({"error": message, "fields": fields or {}}, ensure_ascii=False, separators=(",", ":"))
    return Response(document + "\n", status, mimetype="application/json")


def hub_error_response(error: HubError) -> Response:
    response = json_error(error.status, error.message, error.fields)
    response.headers.update(error.headers)
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(HubError, hub_error_response)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        message = error.description or error.name
        if error.code == 413:
            message = f"request body over the size limit of {app.config.get('MAX_CONTENT_LENGTH')} bytes"
        response = json_error(error.code or 500, message, HTTP_FIELDS.get(error.code))
        for name, value in error.get_headers():  # Allow on a 405, for one
            if name.lower() != "content-type":
                response.headers[name] = value
        return response
