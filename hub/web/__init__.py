"""The web layer: intake, the JSON API under ``/api``, health and metrics, and the operator
console under ``/console``, in one Flask app (``hub.web.app.create_app``)."""
from __future__ import annotations

from flask import current_app


def current_hub():
    """The hub this app serves (``hub.context.Hub``)."""
    return current_app.extensions["hub"]
