"""`alembic upgrade head` on an empty database gives exactly the models' schema."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from marketplace.models import metadata
from marketplace.schema_filter import compare_type, include_object


async def test_migrations_match_models(engine):
    def _diff(connection):
        context = MigrationContext.configure(
            connection, opts={"include_object": include_object, "compare_type": compare_type}
        )
        return compare_metadata(context, metadata)

    async with engine.connect() as conn:
        differences = await conn.run_sync(_diff)
    assert differences == []


async def test_every_model_table_exists(engine):
    def _tables(connection):
        from sqlalchemy import inspect

        return set(inspect(connection).get_table_names())

    async with engine.connect() as conn:
        tables = await conn.run_sync(_tables)
    assert set(metadata.tables) <= tables
