"""CRM targets: one module per CRM, each exposing ``push``."""
from __future__ import annotations

import functools

import yaml

import mappings

MAPPINGS = mappings.FOLDER / "crm"


@functools.lru_cache(maxsize=None)
def load_mapping(name: str) -> dict:
    """``mappings/crm/<name>.yaml``: field names, source ids and stages, as data."""
    with (MAPPINGS / f"{name}.yaml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)
