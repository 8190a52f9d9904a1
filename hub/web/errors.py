"""Every error leaves as JSON: ``{"error": "...", "fields": {"<field>": "..."}}``."""
from __future__ import annotations

from flask import Flask, jsonify
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


def json_error(status: int, message: str, fields: dict[str, str] | None = None):
    response = jsonify({"error": message, "fields": fields or {}})
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(HubError)
    def _hub_error(error: HubError):
        response = json_error(error.status, error.message, error.fields)
        response.headers.update(error.headers)
        return response

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
