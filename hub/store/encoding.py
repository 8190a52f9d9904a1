"""JSON columns' text, encoded and decoded by orjson: a batch stores and reads thousands of
JSON values (sources, details, payloads), and the standard library's encoder cost a tenth of
the pipeline's time."""
from __future__ import annotations

import orjson

OPTIONS = orjson.OPT_NON_STR_KEYS  # keys as the standard library writes them: 1 -> "1"


class EncodedJSON(dict):
    """A JSON value encoded once, however many rows store it (a score that many leads of a
    batch share); never changed after it is made (a change starts from a plain copy)."""

    __slots__ = ("encoded",)

    def __init__(self, value: dict):
        super().__init__(value)
        self.encoded = serialize_json(dict(value))


def serialize_json(value) -> str:
    if isinstance(value, EncodedJSON):
        return value.encoded
    return orjson.dumps(value, option=OPTIONS).decode()


deserialize_json = orjson.loads
