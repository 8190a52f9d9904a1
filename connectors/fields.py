"""Small readers of provider fields shared by several provider modules."""
from __future__ import annotations

from connectors.base import BadRequest


def integer(fields: dict[str, str], name: str) -> int | None:
    """A whole-number field; ``None`` when absent or blank; ``BadRequest`` naming it otherwise."""
    text = fields.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise BadRequest(f"{name} is not a whole number", {name: "invalid"})
    return int(text)
