"""Console accounts: a password (werkzeug's scrypt) or a one-time invitation per team member.
Who may sign in, their name and role, come from the config's team; this table only holds
how they prove it."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from hub.store.models import ConsoleUser

MIN_PASSWORD = 10
INVITE_VALID = timedelta(days=7)
# verified against when the login names nobody, so an unknown login costs as much as a known one
DUMMY_HASH = generate_password_hash("not a password of anyone", method="scrypt")


class PasswordTooShort(ValueError):
    pass


def member_by_login(config, login: str) -> dict | None:
    """A team member by id or e-mail, case-insensitively."""
    login = (login or "").strip().lower()
    return next((m for m in config["team"] if login and login in (m["id"].lower(), (m["email"] or "").lower())), None)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_key(password_hash: str) -> str:
    """Kept in the session cookie: a new password ends every session signed in with the old one."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def user_row(session, member_id: str) -> ConsoleUser:
    return session.get(ConsoleUser, member_id) or ConsoleUser(member_id=member_id)


def set_password(hub, member_id: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise PasswordTooShort(f"a password has at least {MIN_PASSWORD} characters")
    with hub.db.write() as session:
        user = user_row(session, member_id)
        user.password_hash = generate_password_hash(password, method="scrypt")
        user.invite_hash, user.invite_expires_at, user.updated_at = None, None, hub.now()
        session.add(user)


def invite(hub, member_id: str) -> str:
    """A one-time token for the invitation link; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    with hub.db.write() as session:
        user = user_row(session, member_id)
        user.invite_hash, user.invite_expires_at = token_hash(token), hub.now() + INVITE_VALID
        user.updated_at = hub.now()
        session.add(user)
    return token


def invited_member(hub, token: str) -> str | None:
    with hub.db.read() as session:
        user = session.scalar(select(ConsoleUser).where(ConsoleUser.invite_hash == token_hash(token)))
        valid = user is not None and user.invite_expires_at and user.invite_expires_at > hub.now()
        return user.member_id if valid else None


def verify(hub, member_id: str | None, password: str) -> str | None:
    """The session key when the password is right, else None."""
    stored = None
    if member_id:
        with hub.db.read() as session:
            user = session.get(ConsoleUser, member_id)
            stored = user.password_hash if user else None
    if not check_password_hash(stored or DUMMY_HASH, password or "") or stored is None:
        return None
    return session_key(stored)


def current_key(hub, member_id: str) -> str | None:
    with hub.db.read() as session:
        user = session.get(ConsoleUser, member_id)
        return session_key(user.password_hash) if user and user.password_hash else None
