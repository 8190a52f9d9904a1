"""The console's blueprint and CSRF guard, which every page module registers its routes on."""
from __future__ import annotations

from flask import Blueprint
from flask_wtf.csrf import CSRFProtect

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")
csrf = CSRFProtect()
