"""CRM targets: one module per CRM, each exposing ``push``."""
from __future__ import annotations

import functools
from pathlib import Path

import yaml

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings" / "crm"


@functools.lru_cache(maxsize=None)
def load_mapping(name: str) -> dict:
    """``mappings/crm/<name>.yaml``: field names, source ids and stages, as data."""
    with (MAPPINGS / f"{name}.yaml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)
