"""The app factory."""
from __future__ import annotations

from flask import Flask


def create_app(test_config: dict | None = None) -> Flask:
    """The web app. ``test_config`` may carry a ready ``hub`` (``hub.context.Hub``) or any of
    ``config`` (a document), ``database_url``, ``redis_url``, and a ``secret_key`` for the
    console's sessions."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    from hub import context
    from hub.config import load_config
    from hub.web import (
        api,
        console,
        errors,
        health,
        metrics,
        receive,
        reportapi,  # noqa: F401  (its routes join the API's blueprint)
        tracking,
    )

    test_config = test_config or {}
    hub = test_config.get("hub")
    if hub is None:
        config = load_config(document=test_config["config"]) if "config" in test_config else None
        hub = context.build(config, test_config.get("database_url"), test_config.get("redis_url"))
        context.install(hub)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = hub.config["limits"]["body_bytes"]
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.extensions["hub"] = hub
    app.wsgi_app = receive.IntakeServer(app.wsgi_app, hub)
    hops = hub.config["limits"]["trusted_proxies"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    errors.init_app(app)
    app.register_blueprint(api.bp, url_prefix="/api")
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(tracking.bp)
    console.init_app(app, hub, test_config.get("secret_key"))
    return app
