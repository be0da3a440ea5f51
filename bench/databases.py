"""A throwaway PostgreSQL database for a benchmark run, on the server BENCH_DATABASE_URL names."""

import os
import uuid

import asyncpg
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def _dsn() -> str:
    return make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(False)


def url_of(name: str) -> str:
    """The SQLAlchemy URL of database `name` on the benchmark's server."""
    return make_url(POSTGRES_URL).set(database=name).render_as_string(False)


async def postgres_database() -> str | None:
    """A new, empty database's name, or None (with the reason printed) when PostgreSQL is not
    there."""
    try:
        connection = await asyncpg.connect(_dsn(), timeout=3)
    except (OSError, asyncpg.PostgresError) as error:
        print(f"PostgreSQL unavailable: {error}")
        return None
    name = f"cg_bench_{uuid.uuid4().hex[:8]}"
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return name


async def drop_postgres_database(name: str) -> None:
    connection = await asyncpg.connect(_dsn(), timeout=3)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
