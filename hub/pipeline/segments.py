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


def count_segments(text: str) -> tuple[str, int]:
    """``("GSM-7" | "UCS-2", segments)``; an empty text is still one SMS."""
    if all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text):
        encoding, costs = "GSM-7", [2 if char in GSM7_EXTENSION else 1 for char in text]
    else:
        encoding, costs = "UCS-2", [len(char.encode("utf-16-le")) // 2 for char in text]
    single, per_part = LIMITS[encoding]
    if sum(costs) <= single:
        return encoding, 1
    return encoding, _parts(costs, per_part)


def _parts(costs: list[int], per_part: int) -> int:
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:
            parts, used = parts + 1, 0
        used += cost
    return parts
