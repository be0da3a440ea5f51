"""Engine creation, configuration errors and timestamps."""

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import StatementError

from app import db as db_module
from app.accounts.models import Account
from app.db import Database, DatabaseConfigError


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql+aiomysql://root@localhost/test", "Unsupported database 'mysql'"),
        ("sqlite:///plain.db", r"sqlite\+aiosqlite"),
        ("postgresql://root@localhost/test", r"postgresql\+asyncpg"),
        ("sqlite+aiosqlite://", "in-memory"),
        ("not a url", "cannot be used"),
    ],
)
def test_unusable_database_urls_are_explained(url: str, message: str) -> None:
    with pytest.raises(DatabaseConfigError, match=message):
        Database.from_url(url)


async def test_unreachable_postgresql_is_explained_not_a_traceback() -> None:
    db = Database.from_url("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseConfigError, match="Cannot reach the database"):
        await db.check()
    await db.dispose()


async def test_timestamps_come_back_timezone_aware_utc(db: Database) -> None:
    async with db.transaction() as session:
        account = Account(name="Acme", slug="acme")
        session.add(account)
    async with db.session() as session:
        stored = await session.get(Account, account.id)
    assert stored is not None
    assert stored.created_at.tzinfo is not None
    assert stored.created_at.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - stored.created_at).total_seconds()) < 60


async def test_naive_datetimes_are_refused(db: Database) -> None:
    async def store_naive() -> None:
        async with db.transaction() as session:
            session.add(Account(name="Acme", slug="acme", created_at=datetime(2026, 1, 1)))

    with pytest.raises(StatementError, match="naive"):
        await store_naive()


async def test_sqlite_runs_with_wal_and_foreign_keys(tmp_path: object) -> None:
    from sqlalchemy import text

    db = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/pragmas.db")
    async with db.engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await connection.execute(text("PRAGMA busy_timeout"))).scalar() == 30_000
    await db.dispose()


async def _end_a_pooled_connection(db: Database, database_url: str) -> int:
    """Ends, from PostgreSQL's side, the connection the pool just gave back: its backend pid."""
    async with db.session() as session:
        pid = (await session.exec(text("SELECT pg_backend_pid()"))).one()[0]
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    other = await asyncpg.connect(dsn)  # not from the pool, which would hand out that one
    try:
        assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await other.close()
    return int(pid)


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_pooled_postgresql_connection_that_died_while_idle_is_replaced(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recently used connections skip the ping (one round trip less per session under load);
    one idle for longer is pinged, and a dead one replaced before any statement meets it."""
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.05)
    pid = await _end_a_pooled_connection(db, database_url)
    await asyncio.sleep(0.1)
    async with db.session() as session:
        assert (await session.exec(text("SELECT pg_backend_pid()"))).one()[0] != pid


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_pooled_postgresql_connection_the_server_closed_is_replaced_however_recent(
    db: Database, database_url: str
) -> None:
    """A connection the server ended (a restart, a failover, pg_terminate_backend, an idle
    killer) within the ping's grace period is not handed out either: the closed socket is seen
    without a round trip. Before, the next session met it and its request failed
    (InterfaceError: the underlying connection is closed)."""
    pid = await _end_a_pooled_connection(db, database_url)
    await asyncio.sleep(0.1)  # well within PING_AFTER_IDLE_SECONDS: no ping is due
    async with db.session() as session:
        assert (await session.exec(text("SELECT pg_backend_pid()"))).one()[0] != pid
