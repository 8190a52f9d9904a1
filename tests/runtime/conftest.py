"""A real Dovecot for the mail tests: started from a generated config in a temporary folder,
on free loopback ports (plain IMAP with STARTTLS, and IMAPS with a self-signed certificate made
at test time), passwd-file users with one known password, maildir storage. Works as root (mail
is owned by ``nobody``, as Dovecot refuses UID 0) and as an ordinary user."""
from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient
from rq import Queue, SimpleWorker

from hub.store.queue import QUEUE_NAME

from tests.helpers import IMAP_PASSWORD, IMAP_PASSWORD_ENV, free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USERS = 300

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
verbose_proctitle = yes
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = {uid}
{ssl}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
  }}
{chroot}}}
"""


def make_certificate(folder: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate for 127.0.0.1 / localhost (None without openssl)."""
    if not shutil.which("openssl"):
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


class Dovecot:
    def __init__(self, root: Path):
        self.root = root
        self.port, self.ssl_port = free_port(), free_port()
        self.is_root = os.geteuid() == 0
        owner = pwd.getpwnam("nobody") if self.is_root else pwd.getpwuid(os.getuid())
        self.uid, self.gid = owner.pw_uid, owner.pw_gid
        (root / "mail").mkdir()
        if self.is_root:
            os.chown(root / "mail", self.uid, self.gid)
        # All users up front: Dovecot notices a changed passwd-file by its mtime (1 s
        # resolution), so users appended during the run would fail to log in at random.
        (root / "passwd").write_text("".join(
            f"user{n}:{{PLAIN}}{IMAP_PASSWORD}:{self.uid}:{self.gid}::{root}/mail/user{n}::\n"
            for n in range(1, USERS + 1)))
        self.certificate = make_certificate(root)
        self.process: subprocess.Popen | None = None
        self.unused = itertools.count(1)
        self.write_config()

    def write_config(self) -> None:
        ssl = "ssl = no"
        if self.certificate:
            ssl = f"ssl = yes\nssl_cert = <{self.certificate[0]}\nssl_key = <{self.certificate[1]}"
        me = pwd.getpwuid(os.getuid()).pw_name
        (self.root / "dovecot.conf").write_text(CONFIG.format(
            root=self.root, port=self.port, ssl_port=self.ssl_port if self.certificate else 0, ssl=ssl,
            uid=min(self.uid, 500), internal_user="dovecot" if self.is_root else me,
            login_user="dovenull" if self.is_root else me,
            chroot="" if self.is_root else "  chroot =\n"))

    def start(self) -> None:
        self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.process.stderr.read().decode()} {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start: {self.log()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def add_user(self) -> str:
        """A user no other test has touched (its maildir is created on first login)."""
        number = next(self.unused)
        assert number <= USERS, "raise USERS in tests/runtime/conftest.py"
        return f"user{number}"

    def client(self, user: str, timeout: float = 10) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=timeout)
        client.login(user, IMAP_PASSWORD)
        return client

    def deliver(self, user: str, messages: list[bytes], folder: str = "INBOX") -> None:
        """IMAP APPEND, in chunks (MULTIAPPEND)."""
        with self.client(user, timeout=60) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for start in range(0, len(messages), 500):
                client.multiappend(folder, messages[start:start + 500])

    def sessions(self, user: str) -> list[int]:
        """PIDs of the imap processes serving ``user`` (children of our master)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid and cmdline.startswith("dovecot/imap ") and f"[{user} " in cmdline:
                found.append(int(entry.name))
        return found

    def kill_sessions(self, user: str) -> int:
        """SIGKILL the user's imap processes and wait until they are gone (a dying process
        still holds the mailbox's locks for a moment)."""
        pids = self.sessions(user)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while set(pids) & set(self.sessions(user)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(pids)

    def mailbox(self, user: str, **overrides) -> dict:
        """A ``mailboxes:`` entry for ``user`` (plain IMAP on loopback, fast intervals)."""
        return {"host": "127.0.0.1", "port": self.port, "ssl": False, "username": user,
                "password_env": IMAP_PASSWORD_ENV, "poll_interval": "1s", "timeout": "5s",
                "own_addresses": ["example.com"], "company_phones": ["+7 495 123-45-67"], **overrides}


def new_dovecot() -> Dovecot:
    root = Path(tempfile.mkdtemp(prefix="hub-dovecot-"))
    root.chmod(0o755)  # Dovecot's unprivileged processes read the passwd file and the mail
    server = Dovecot(root)
    server.start()
    return server


@pytest.fixture(scope="session")
def dovecot():
    if not os.path.exists(DOVECOT):
        pytest.fail("the mailbox tests need Dovecot: `make test` installs it as root, "
                    "or run `apt-get install dovecot-imapd`")
    server = new_dovecot()
    yield server
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def own_dovecot():
    """A Dovecot of the test's own, for tests that stop and restart the server."""
    server = new_dovecot()
    yield server
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def mail_hub(request, config_document, monkeypatch):
    """``mail_hub({"sales": dovecot.mailbox(user)})``: the ``hub`` fixture with these mailboxes."""
    monkeypatch.setenv(IMAP_PASSWORD_ENV, IMAP_PASSWORD)

    def build(mailboxes: dict):
        config_document["mailboxes"] = mailboxes
        hub = request.getfixturevalue("hub")
        assert hub.config["mailboxes"], "a fixture built `hub` first: ask for drain_queue, not run_jobs/client"
        return hub

    return build


@pytest.fixture
def drain_queue(redis_client):
    """``run_jobs`` without building ``hub`` first: an rq worker drains the queue (burst)."""

    def drain() -> None:
        queue = Queue(QUEUE_NAME, connection=redis_client)
        SimpleWorker([queue], connection=redis_client).work(burst=True, with_scheduler=False)

    return drain
