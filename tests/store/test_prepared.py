"""Rows inserted through prepared statements (on SQLite on the driver's cursor) come out as
SQLAlchemy's own insert would make them: the columns' defaults filled in, the conversions
applied, the rows in the order given, a constraint broken raised as SQLAlchemy's error."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hub.store.models import Lead, TeamMember
from hub.store.prepared import insert_rows


def members(hub) -> list[tuple]:
    with hub.db.read() as session:
        query = select(TeamMember).order_by(TeamMember.id)
        return [(m.id, m.role, m.weight, m.away, m.active) for m in session.scalars(query)]


def test_left_out_columns_get_their_defaults(hub):
    rows = [{"id": "anna", "name": "Anna"}, {"id": "boris", "name": "Boris"},
            {"id": "vera", "name": "Vera", "role": "head", "weight": 3}, {"id": "gleb", "name": "Gleb"}]
    with hub.db.write() as session:
        insert_rows(session.connection(), TeamMember.__table__, rows)
    assert members(hub) == [("anna", "manager", 1, False, True), ("boris", "manager", 1, False, True),
                            ("gleb", "manager", 1, False, True), ("vera", "head", 3, False, True)]


def test_runs_of_rows_with_other_columns_go_in_in_the_order_given(hub):
    at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    names = ["first", "second", "third", "fourth", "fifth"]
    rows = [{"status": "new", "channel": "form", "source": {}, "last_source": {}, "created_at": at,
             "updated_at": at, "name": name} | ({"email": f"{name}@example.com"} if index in (1, 2) else {})
            for index, name in enumerate(names)]
    with hub.db.write() as session:
        insert_rows(session.connection(), Lead.__table__, rows)
    with hub.db.read() as session:
        stored = list(session.execute(select(Lead.name, Lead.email).order_by(Lead.id)))
    assert [name for name, _ in stored] == names and stored[1].email == "second@example.com"


def test_timestamps_and_json_go_through_the_columns_conversions(hub):
    moscow = timezone(timedelta(hours=3))
    created = datetime(2026, 12, 1, 2, 30, 0, 5, tzinfo=moscow)
    row = {"status": "new", "channel": "form", "source": {"utm_source": "яндекс", 7: "seven"}, "last_source": {},
           "created_at": created, "updated_at": created}
    with hub.db.write() as session:
        insert_rows(session.connection(), Lead.__table__, [row])
    with hub.db.read() as session:
        lead = session.scalar(select(Lead))
    assert lead.created_at == created and lead.created_at.tzinfo == UTC
    assert lead.source == {"utm_source": "яндекс", "7": "seven"}


def test_a_broken_constraint_is_sqlalchemys_integrity_error(hub):
    with pytest.raises(IntegrityError), hub.db.write() as session:
        twice = [{"id": "anna", "name": "A"}, {"id": "anna", "name": "B"}]
        insert_rows(session.connection(), TeamMember.__table__, twice)
    assert members(hub) == []
