"""Statements compiled once and run on the driver's own cursor.

The hot paths (the intake's insert, a batch's inserts of thousands of rows) ran through
SQLAlchemy's per-statement and per-row machinery, which cost more than the database's own work.
A ``Prepared`` statement keeps what SQLAlchemy would compute each time (the SQL, the order of its
parameters, each column's conversion, the columns' Python-side defaults) and hands the driver
converted values. Driver errors come out as SQLAlchemy's, as ``connection.execute`` raises them.
"""
from __future__ import annotations

import functools
import itertools
import operator

from sqlalchemy import Connection, Table, insert
from sqlalchemy.exc import DBAPIError


class Prepared:
    def __init__(self, statement, dialect, column_keys: list[str] | None = None):
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        self.sql, self.dialect = str(compiled), dialect
        self.names = compiled.positiontup  # None for drivers that take named parameters
        processors = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                      for name, bind in compiled.binds.items()}
        # the parameters' names in the order the driver takes them, and the ones to convert
        self.keys = list(self.names or processors)
        self.take = operator.itemgetter(*self.keys) if len(self.keys) > 1 else lambda values: (values[self.keys[0]],)
        self.conversions = [(index, processors[name]) for index, name in enumerate(self.keys) if processors[name]]
        # columns left out of the rows whose default SQLAlchemy would have filled in
        self.defaults = {column.key: column.default for column in getattr(compiled, "insert_prefetch", ())}

    def parameters(self, values: dict):
        if self.defaults:
            values = {**{key: default_value(default) for key, default in self.defaults.items()}, **values}
        row = list(self.take(values))
        for index, convert in self.conversions:  # only the columns that need it (times, JSON)
            row[index] = convert(row[index])
        return row if self.names is not None else dict(zip(self.keys, row, strict=True))

    def returns_row(self, connection: Connection, values: dict) -> bool:
        """Run it once; whether it returned a row (an INSERT ... RETURNING that inserted)."""
        parameters = self.parameters(values)
        with self.cursor(connection, parameters) as cursor:
            cursor.execute(self.sql, parameters)
            return cursor.fetchone() is not None

    def run_many(self, connection: Connection, rows: list[dict]) -> None:
        parameters = [self.parameters(row) for row in rows]
        with self.cursor(connection, parameters) as cursor:
            cursor.executemany(self.sql, parameters)

    def cursor(self, connection: Connection, parameters):
        return DriverCursor(self, connection.connection.cursor(), parameters)


class DriverCursor:
    def __init__(self, prepared: Prepared, cursor, parameters):
        self.prepared, self.raw, self.parameters = prepared, cursor, parameters

    def __enter__(self):
        return self.raw

    def __exit__(self, kind, error, _traceback):
        self.raw.close()
        dbapi = self.prepared.dialect.loaded_dbapi
        if isinstance(error, dbapi.Error):
            raise DBAPIError.instance(self.prepared.sql, self.parameters, error, dbapi.Error,
                                      dialect=self.prepared.dialect) from error
        return False


def default_value(default):
    return default.arg(None) if default.is_callable else default.arg


def insert_rows(connection: Connection, table: Table, rows: list[dict]) -> None:
    """``rows`` inserted in order, one executemany per run of rows with the same columns (an
    executemany takes its columns from its first row). On SQLite on the driver's cursor;
    elsewhere through SQLAlchemy, which sends PostgreSQL many rows per statement (a round trip
    each would cost more than it saves)."""
    for keys, run in runs_of_columns(rows):
        if connection.dialect.name == "sqlite":
            prepared_insert(table, keys, connection.dialect).run_many(connection, run)
        else:
            connection.execute(plain_insert(table), run)


def runs_of_columns(rows: list[dict]) -> list[tuple[tuple[str, ...], list[dict]]]:
    return [(keys, list(run)) for keys, run in itertools.groupby(rows, key=lambda row: tuple(row))]


def execute_many(connection: Connection, statement, rows: list[dict]) -> None:
    """``statement`` (built once: it keys the cache) run for each of ``rows``: on SQLite on the
    driver's cursor, elsewhere through SQLAlchemy."""
    if connection.dialect.name != "sqlite":
        connection.execute(statement, rows)
        return
    prepared_statement(statement, connection.dialect).run_many(connection, rows)


@functools.lru_cache(maxsize=64)
def prepared_statement(statement, dialect) -> Prepared:
    return Prepared(statement, dialect)


@functools.cache
def plain_insert(table: Table):
    return insert(table)


@functools.lru_cache(maxsize=256)
def prepared_insert(table: Table, keys: tuple[str, ...], dialect) -> Prepared:
    return Prepared(plain_insert(table), dialect, column_keys=list(keys))
