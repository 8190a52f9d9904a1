"""How many SMS segments a text takes (GSM 03.38), for cost estimates and length warnings.

GSM-7 carries 160 septets in one SMS or 153 per part of a concatenated one (the other septets
hold the part header); an extension-table character (``€ ^ { } [ ] ~ | \\`` and form feed)
costs two septets, an escape plus the character. Any other character switches the whole text
to UCS-2: 70 UTF-16 code units in one SMS, 67 per part; an emoji outside the BMP is two units.
A two-unit character is never split between parts, as phones and gateways do.
"""
from __future__ import annotations

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


GSM7 = GSM7_BASIC | GSM7_EXTENSION


def count_segments(text: str) -> tuple[str, int]:
    """``("GSM-7" | "UCS-2", segments)``; an empty text is still one SMS."""
    if GSM7.issuperset(text):
        encoding, size = "GSM-7", len(text) + sum(map(text.count, GSM7_EXTENSION))
    else:
        encoding, size = "UCS-2", len(text.encode("utf-16-le")) // 2
    single, per_part = LIMITS[encoding]
    if size <= single:
        return encoding, 1
    if size == len(text):  # every character one unit: no character to keep whole
        return encoding, -(-size // per_part)
    if encoding == "GSM-7":
        costs = [2 if char in GSM7_EXTENSION else 1 for char in text]
    else:
        costs = [len(char.encode("utf-16-le")) // 2 for char in text]
    return encoding, _parts(costs, per_part)


def _parts(costs: list[int], per_part: int) -> int:
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:
            parts, used = parts + 1, 0
        used += cost
    return parts
