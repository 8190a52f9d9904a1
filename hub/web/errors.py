"""Every error leaves as JSON: ``{"error": "...", "fields": {"<field>": "..."}}``."""
from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException


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
        if error.code == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            return json_error(413, f"request body over the size limit of {limit} bytes",
                              {"body": "too large"})
        return json_error(error.code or 500, error.description or error.name)
