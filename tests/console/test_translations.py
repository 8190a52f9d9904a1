"""Every message the console shows has its Russian translation, compiled."""
from __future__ import annotations

from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

CONSOLE = Path(__file__).resolve().parents[2] / "hub" / "web" / "console"
CATALOGUE = CONSOLE / "translations" / "ru" / "LC_MESSAGES"
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2")]


def code_messages() -> set[str]:
    keywords = {**DEFAULT_KEYWORDS, "_l": None}
    found = set()
    for _, _, message, _, _ in extract_from_dir(str(CONSOLE), METHODS, keywords=keywords):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_console_message_has_a_russian_translation():
    with open(CATALOGUE / "messages.po", "rb") as handle:
        catalogue = {m.id: m.string for m in read_po(handle) if m.id}
    messages = code_messages()
    assert len(messages) > 100
    assert sorted(m for m in messages if not catalogue.get(m)) == []


def test_the_compiled_catalogue_matches_its_source():
    with open(CATALOGUE / "messages.po", "rb") as po, open(CATALOGUE / "messages.mo", "rb") as mo:
        source = {m.id: m.string for m in read_po(po) if m.id and m.string}
        compiled = {m.id: m.string for m in read_mo(mo) if m.id}
    assert compiled == source
