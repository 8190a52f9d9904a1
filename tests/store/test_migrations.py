from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.store.db import make_engine
from hub.store.models import Base


def test_migrations_build_exactly_the_models(database_url):
    engine = make_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []
