"""The outgoing e-mail builder: the exact bytes, and what a reader parses back from them."""
from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from connectors.base import Outgoing, PermanentFailure
from connectors.mail import compose

MOMENT = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
SENDER = "Отдел продаж <sales@example.com>"
INJECTION = "=?utf-8?q?=0D=0AReply-To:_x@evil.example?="
SUBJECT = (f"Re: Заявка с сайта {INJECTION} Ivan\r\nBcc: boss@example.com "
           "https://site.example/catalog/item?utm_source=yandex&utm_campaign=winter-sale")

GOLDEN = (
    b"From: =?utf-8?b?0J7RgtC00LXQuyDQv9GA0L7QtNCw0LY=?= <sales@example.com>\r\n"
    b"To: ivan@example.com\r\n"
    b"Subject: Re:\r\n"
    b" =?utf-8?b?0JfQsNGP0LLQutCwINGBINGB0LDQudGC0LAgPT91dGYtOD9xPz0wRA==?=\r\n"
    b" =?utf-8?b?PTBBUmVwbHktVG86X3hAZXZpbC5leGFtcGxlPz0=?= Ivan Bcc:\r\n"
    b" boss@example.com\r\n"
    b" =?utf-8?b?aHR0cHM6Ly9zaXRlLmV4YW1wbGUvY2F0YWxvZy9pdGVtP3V0bV9zbw==?=\r\n"
    b" =?utf-8?b?dXJjZT15YW5kZXgmdXRtX2NhbXBhaWduPXdpbnRlci1zYWxl?=\r\n"
    b"Date: Mon, 23 Nov 2026 07:30:00 +0000\r\n"
    b"Message-ID: <lead-7-notification-3.1795419000@example.com>\r\n"
    b"In-Reply-To: <client-1@mail.example>\r\n"
    b"References: <client-1@mail.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: text/plain; charset="utf-8"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"0JjQstCw0L0sINCy0LDRiNCwINC30LDRj9Cy0LrQsCDQv9GA0LjQvdGP0YLQsC4NCtCd0L7QvNC1\r\n"
    b"0YAgNw==\r\n"
)


def outgoing(**changes) -> Outgoing:
    values = {"channel": "email", "to": "ivan@example.com", "text": "Иван, ваша заявка принята.\nНомер 7",
              "subject": SUBJECT, "idempotency_key": "lead-7-notification-3",
              "reply_to_message_id": "<client-1@mail.example>", **changes}
    return Outgoing(**values)


def test_golden_bytes():
    """The bytes on the wire, pinned: the same on every Python version the hub runs on."""
    message_id, data = compose.build(outgoing(), SENDER, MOMENT)
    assert message_id == "<lead-7-notification-3.1795419000@example.com>"
    assert data == GOLDEN
    assert max(len(line) for line in data.split(b"\r\n")) <= 78


def test_a_reader_gets_back_exactly_what_was_built():
    _, data = compose.build(outgoing(), SENDER, MOMENT)
    parsed = message_from_bytes(data, policy=policy.default)
    assert parsed.keys() == ["From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
                             "MIME-Version", "Content-Type", "Content-Transfer-Encoding"]
    assert parsed["Subject"] == compose.clean(SUBJECT)  # the client's encoded word stays literal
    assert INJECTION in parsed["Subject"] and "\n" not in parsed["Subject"]
    assert (parsed["From"].addresses[0].display_name, parsed["From"].addresses[0].addr_spec) == (
        "Отдел продаж", "sales@example.com")
    assert not parsed.is_multipart() and not parsed.defects
    assert parsed.get_content() == "Иван, ваша заявка принята.\r\nНомер 7"


@pytest.mark.parametrize("text, expected", [
    ("Ivan\r\nBcc: x@example.com", "Ivan Bcc: x@example.com"),
    ("a\x00b\x07c\x1b[31m", "a b c [31m"),
    ("line\u2028separator\u0085next", "line separator next"),
    ("lone \udc80 surrogate", "lone surrogate"),
    ("  many   spaces\t", "many spaces"),
])
def test_control_characters_become_spaces(text, expected):
    assert compose.clean(text) == expected


def test_adjacent_encoded_words_keep_the_spaces_between_words():
    _, data = compose.build(outgoing(subject="Иван Петров  ООО «Ромашка» ok"), SENDER, MOMENT)
    assert message_from_bytes(data, policy=policy.default)["Subject"] == "Иван Петров ООО «Ромашка» ok"


def test_a_very_long_subject_is_shortened_and_folded():
    _, data = compose.build(outgoing(subject="Заявка " * 100), SENDER, MOMENT)
    subject = message_from_bytes(data, policy=policy.default)["Subject"]
    assert len(subject) == compose.SUBJECT_LIMIT and subject.endswith("…")
    assert max(len(line) for line in data.split(b"\r\n")) <= 78


@pytest.mark.parametrize("reply_to", ["client-1@mail.example", "<a b@x>", "<a\r\nBcc: x@y>", "<" + "x" * 901 + ">"])
def test_a_malformed_thread_id_starts_a_new_thread(reply_to):
    _, data = compose.build(outgoing(reply_to_message_id=reply_to), SENDER, MOMENT)
    assert b"In-Reply-To" not in data and b"References" not in data


@pytest.mark.parametrize(
    "to", ["ivan@example.com\r\nBcc: x@example.com", "Ivan <ivan@example.com>", "иван@example.com", ""]
)
def test_an_address_a_header_cannot_hold_is_a_permanent_failure_naming_the_field(to):
    with pytest.raises(PermanentFailure, match="^to: "):
        compose.build(outgoing(to=to), SENDER, MOMENT)
