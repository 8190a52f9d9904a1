"""``GET /t.js``: the site's attribution script (first and last touch into every form's hidden
fields); see the README's "Tracking script"."""
from __future__ import annotations

from importlib.resources import files

from flask import Blueprint, Response

bp = Blueprint("tracking", __name__)
SCRIPT = files("hub.web").joinpath("tracking.js").read_bytes()


@bp.get("/t.js")
def tracking_script():
    response = Response(SCRIPT, content_type="application/javascript; charset=utf-8")
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["Access-Control-Allow-Origin"] = "*"  # a public script, loaded by any site
    return response
