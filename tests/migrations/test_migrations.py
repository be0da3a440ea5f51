"""Migrations: from empty to head on both databases, and in step with the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from app.db import Database
from app.migrations.runner import migrate
from app.models import import_all_models


async def _schema_differences(db: Database) -> list[object]:
    import_all_models()
    async with db.engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), SQLModel.metadata)
        )


async def test_migrations_build_the_models_tables_from_empty(database_url: str) -> None:
    # `database_url` is already migrated from a template; upgrading again must be a no-op,
    # and the result must match the models exactly.
    await migrate(database_url)
    db = Database.from_url(database_url)
    try:
        async with db.engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert {"account", "api_key", "subaccount", "alembic_version"} <= tables
        assert await _schema_differences(db) == []
    finally:
        await db.dispose()


async def test_migrate_from_an_empty_sqlite_file(tmp_path: object) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/empty.db"
    await migrate(url)
    db = Database.from_url(url)
    try:
        assert await _schema_differences(db) == []
    finally:
        await db.dispose()
