import socket
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from connectors.base import Outgoing, PermanentFailure, TemporaryFailure
from connectors.mail import smtp

from tests.helpers import SmtpServer

SETTINGS = {"host": "127.0.0.1", "from": "Sales <sales@example.com>", "starttls": False,
            "ssl": False, "username": None, "password": None, "timeout": 5}


@pytest.fixture
def server():
    with SmtpServer() as running:
        yield running


def test_sends_a_reply_in_the_clients_thread(server):
    message = Outgoing(channel="email", to="ivan@example.com", text="Ваша заявка принята. Номер 7",
                       subject="Re: Заявка", idempotency_key="lead-7-notification-3",
                       reply_to_message_id="<client-1@mail.example>")
    sent = smtp.send(message, {**SETTINGS, "port": server.port})
    [received] = server.inbox.messages
    assert received["To"] == "ivan@example.com"
    assert received["Subject"] == "Re: Заявка"
    assert received["In-Reply-To"] == "<client-1@mail.example>"
    assert received["References"] == "<client-1@mail.example>"
    assert received["Message-ID"].strip() == sent.provider_message_id
    assert "lead-7-notification-3" in sent.provider_message_id
    assert received.get_content().strip() == "Ваша заявка принята. Номер 7"


def test_a_refused_recipient_is_permanent(server):
    server.inbox.refuse["ghost@example.com"] = "550 5.1.1 no such user"
    with pytest.raises(PermanentFailure) as error:
        smtp.send(Outgoing(channel="email", to="ghost@example.com", text="x"), {**SETTINGS, "port": server.port})
    assert "550" in error.value.message


def test_a_busy_server_is_temporary(server):
    server.inbox.refuse["busy@example.com"] = "451 4.3.0 try again later"
    with pytest.raises(TemporaryFailure):
        smtp.send(Outgoing(channel="email", to="busy@example.com", text="x"), {**SETTINGS, "port": server.port})


def test_no_server_is_temporary():
    with socket.socket() as refusing:  # bound, never listening: connections are refused
        refusing.bind(("127.0.0.1", 0))
        with pytest.raises(TemporaryFailure):
            smtp.send(Outgoing(channel="email", to="a@example.com", text="x"),
                      {**SETTINGS, "port": refusing.getsockname()[1]})


MOMENT = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)


def confirmation(subject: str) -> Outgoing:
    return Outgoing(channel="email", to="ivan@example.com", text="Ваша заявка принята. Номер 7", subject=subject,
                    idempotency_key="lead-7-notification-3", meta={"date": MOMENT})


def test_every_message_carries_a_date_and_a_message_id_in_the_senders_domain(server):
    sent = smtp.send(confirmation("Ваша заявка №7"), {**SETTINGS, "port": server.port})
    [received] = server.inbox.messages
    assert received["Date"].datetime == MOMENT
    assert received["Message-ID"] == sent.provider_message_id == "<lead-7-notification-3.1795419000@example.com>"


def test_a_name_with_cr_lf_still_gets_its_confirmation(server):
    smtp.send(confirmation("Иван\r\nBcc: boss@example.com\r\n\r\nfake body, ваша заявка №7"),
              {**SETTINGS, "port": server.port})
    [received], [raw] = server.inbox.messages, server.inbox.raw
    assert server.inbox.recipients == [["ivan@example.com"]]
    assert b"\r\nBcc:" not in raw and "Bcc" not in received
    assert received["Subject"] == "Иван Bcc: boss@example.com fake body, ваша заявка №7"
    assert received.get_content() == "Ваша заявка принята. Номер 7"


def test_a_name_holding_an_encoded_word_stays_literal_text(server):
    name = "=?utf-8?q?Ivan=0D=0AReply-To:_evil@attacker.example=0D=0A=0D=0Ainjected_body?="
    smtp.send(confirmation(f"{name}, ваша заявка №7"), {**SETTINGS, "port": server.port})
    [raw] = server.inbox.raw
    assert b"\r\nReply-To:" not in raw and b"injected" not in raw
    parsed = message_from_bytes(raw, policy=policy.default)  # the wire bytes, read back
    assert parsed.get_all("Reply-To") is None and not parsed.is_multipart() and not parsed.defects
    assert (parsed["To"], parsed["Subject"]) == ("ivan@example.com", f"{name}, ваша заявка №7")
    assert parsed.get_content() == "Ваша заявка принята. Номер 7"
