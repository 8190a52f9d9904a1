import socket

import pytest

from connectors.base import Outgoing, PermanentFailure, TemporaryFailure
from connectors.mail import smtp
from tests.smtp_server import SmtpServer

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
