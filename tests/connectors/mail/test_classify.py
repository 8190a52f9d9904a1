"""Mail that makes no lead: each reason on its fixture, and the header rules one by one."""
from __future__ import annotations

import pytest

from connectors.mail.classify import ignore_reason
from connectors.mail.parse import read_message

PLAIN = "From: Client <client@example.org>\r\nTo: sales@example.com\r\nSubject: Hi\r\n"


def reason(extra_headers: str) -> str | None:
    return ignore_reason(read_message((PLAIN + extra_headers + "\r\nHello\r\n").encode()))


@pytest.mark.parametrize("fixture, expected", [
    ("autoreply__auto_submitted.eml", "auto-reply"),
    ("autoreply__x_autoreply.eml", "auto-reply"),
    ("autoreply__suppress_header_only.eml", None),  # Outlook's header on ordinary mail
    ("bounce__dsn.eml", "bounce"),
    ("bulk__list_unsubscribe.eml", "bulk"),
    ("spam__flagged.eml", "spam"),
    ("cyrillic__windows1251_8bit.eml", None),
    ("thread__reply_in_reply_to.eml", None),
    ("form__noreply_reply_to.eml", None),
])
def test_fixtures_are_classified(parse, fixture, expected):
    assert parse(fixture).ignore == expected


@pytest.mark.parametrize("headers, expected", [
    ("Auto-Submitted: auto-generated\r\n", "auto-reply"),
    ("Auto-Submitted: auto-replied; owner-email=a@example.org\r\n", "auto-reply"),
    ("Auto-Submitted: no\r\n", None),
    ("Auto-Submitted: No\r\n", None),
    ("X-Autoreply: yes\r\n", "auto-reply"),
    ("X-Autorespond: on vacation\r\n", "auto-reply"),
    ("Precedence: auto_reply\r\n", "auto-reply"),
    ("X-Auto-Response-Suppress: DR, OOF, AutoReply\r\n", None),
    ("Precedence: bulk\r\n", "bulk"),
    ("Precedence: list\r\n", "bulk"),
    ("Precedence: junk\r\n", "bulk"),
    ("List-Id: Sales news <news.example.net>\r\n", "bulk"),
    ("List-Unsubscribe: <mailto:u@example.net>\r\n", "bulk"),
    ("X-Spam-Flag: YES\r\n", "spam"),
    ("X-Spam-Flag: NO\r\n", None),
    ("X-Spam-Status: No, score=0.1\r\n", None),
    ("X-Failed-Recipients: nobody@example.org\r\n", "bounce"),
])
def test_header_rules(headers, expected):
    assert reason(headers) == expected


def test_mailer_daemon_and_null_return_path_postmaster_are_bounces():
    daemon = "From: MAILER-DAEMON@mx.example.org\r\nSubject: failure notice\r\n\r\nsorry\r\n"
    assert ignore_reason(read_message(daemon.encode())) == "bounce"
    postmaster = "Return-Path: <>\r\nFrom: postmaster@mx.example.org\r\nSubject: x\r\n\r\nsorry\r\n"
    assert ignore_reason(read_message(postmaster.encode())) == "bounce"
    human = "Return-Path: <postmaster@example.org>\r\nFrom: postmaster@example.org\r\nSubject: x\r\n\r\nhi\r\n"
    assert ignore_reason(read_message(human.encode())) is None
