"""Lead Hub: catches leads from web forms, mailboxes, telephony and SMS, numbers them,
assigns them and confirms them to the client.

The folders follow the data: ``web`` (intake, API) → ``pipeline`` → ``rules`` → ``store``, with
``delivery`` (outbox, CRM pushes) and ``runtime`` (processes) around them."""
from __future__ import annotations

__version__ = "0.1.0"


def create_app(test_config: dict | None = None):
    """``hub:create_app()`` for WSGI servers; the factory lives in ``hub.web``."""
    from hub.web.app import create_app as build

    return build(test_config)
