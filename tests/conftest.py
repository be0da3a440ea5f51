"""Shared fixtures: a clean, migrated database per test on SQLite and on PostgreSQL."""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from sqlalchemy import event
from sqlalchemy.engine import make_url

from app.accounts import service as accounts
from app.accounts.models import Account, ApiKey, Mode
from app.config import Settings
from app.db import Database
from app.main import create_app
from app.migrations.runner import upgrade_to_head

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TEST_SECRET = "test-secret-key-for-the-suite-only"


def postgres_admin_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def _pg_reachable(url: str) -> str | None:
    try:
        asyncio.run(_pg_execute(url, "SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        return f"PostgreSQL at {make_url(url).render_as_string()} is unreachable: {error}"
    return None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade_to_head(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated PostgreSQL database that each test's database is cloned from."""
    admin_url = postgres_admin_url()
    problem = _pg_reachable(admin_url)
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem} (required under CI=true)")
        print(f"\nskipping PostgreSQL tests: {problem}")
        pytest.skip(problem)
    name = f"cg_template_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_execute(admin_url, f'CREATE DATABASE "{name}"'))
    upgrade_to_head(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
    yield name
    asyncio.run(_pg_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A clean, migrated database for one test: a SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template = request.getfixturevalue("postgres_template")
    admin_url = postgres_admin_url()
    name = f"cg_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_execute(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_pg_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_url() -> str:
    """TEST_REDIS_URL (default the local Redis); tests using it keep their keys unique."""
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {url} is unreachable: {error} (required under CI=true)")
        print(f"\nskipping Redis tests: {error}")
        pytest.skip(f"Redis at {url} is unreachable: {error}")
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Rate limits have their own tests; elsewhere they would only make tests wait.
    return Settings(
        database_url=database_url,
        secret_key=TEST_SECRET,
        run_worker=False,
        debug=False,
        rate_limit_per_second=0,
    )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database.from_url(database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client for the app; end-to-end tests use a real server instead."""
    app = create_app(settings, database=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def make_account(db: Database, slug: str = "acme", name: str = "Acme Ltd") -> Account:
    async with db.transaction() as session:
        return await accounts.create_account(session, name, slug)


async def make_key(
    db: Database, account: Account, mode: Mode = Mode.TEST, *, admin: bool = False
) -> tuple[ApiKey, str]:
    async with db.transaction() as session:
        return await accounts.create_api_key(
            session, account.id, mode, name=f"{mode.value} key", is_admin=admin
        )


def versions_statements(db: Database) -> int:
    """The statements through `db`'s engine of the response cache's data-version read: none on
    SQLite, which reads them on a connection of its own (app/data_versions.py,
    SQLiteVersionReader), one elsewhere."""
    return 0 if db.is_sqlite else 1


@contextmanager
def counting_statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements `db` runs inside the block, SQLite's explicit BEGINs left out so that
    counts are the same on both databases."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        if not str(args[2]).startswith("BEGIN"):
            statements.append(args[2])

    for engine in db.engines:
        event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        for engine in db.engines:
            event.remove(engine.sync_engine, "before_cursor_execute", record)


class GraphQLClient:
    """Posts operations with one API key and returns the decoded JSON body."""

    def __init__(self, http: httpx.AsyncClient, key: str | None, **headers: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.headers.update(headers)

    async def post(self, query: str, **variables: object) -> httpx.Response:
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=self.headers
        )

    async def execute(self, query: str, **variables: object) -> dict:  # type: ignore[type-arg]
        response = await self.post(query, **variables)
        assert response.status_code == 200, response.text
        body = response.json()
        return body  # type: ignore[no-any-return]


@pytest.fixture
async def account(db: Database) -> Account:
    return await make_account(db)


@pytest.fixture
async def test_key(db: Database, account: Account) -> str:
    return (await make_key(db, account, Mode.TEST))[1]


@pytest.fixture
async def admin_key(db: Database, account: Account) -> str:
    return (await make_key(db, account, Mode.TEST, admin=True))[1]


@pytest.fixture
async def live_key(db: Database, account: Account) -> str:
    return (await make_key(db, account, Mode.LIVE))[1]


@pytest.fixture
def gql(client: httpx.AsyncClient, test_key: str) -> GraphQLClient:
    return GraphQLClient(client, test_key)
