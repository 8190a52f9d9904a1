"""Alembic, driven from code so ``hub db upgrade`` works from any directory."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from hub.store.db import database_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", (url or database_url()).replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    from hub.store.db import make_engine

    engine = make_engine(url)  # creates the SQLite folder; applies the same connect settings
    config = alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()
