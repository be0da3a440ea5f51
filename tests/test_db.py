"""Engine creation, configuration errors and timestamps."""

import asyncio
import itertools
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


async def _stored_account(db: Database) -> tuple[Account, Account]:
    """An account as written, and as a read session reads it back."""
    async with db.transaction() as session:
        account = Account(name="Acme", slug="acme")
        session.add(account)
    async with db.session() as session:
        stored = await session.get(Account, account.id)
    assert stored is not None
    return account, stored


async def test_timestamps_come_back_timezone_aware_utc(db: Database) -> None:
    _, stored = await _stored_account(db)
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


# SQLite reads on the loop's thread (app/inline_sqlite.py)


async def _sqlite_db(tmp_path: object) -> Database:
    url = f"sqlite+aiosqlite:///{tmp_path}/inline.db"
    from app.migrations.runner import migrate

    await migrate(url)
    return Database.from_url(url)


async def test_sqlite_reads_run_on_the_loop_thread_without_giving_up_the_loop(
    tmp_path: object,
) -> None:
    import threading

    db = await _sqlite_db(tmp_path)
    async with db.transaction() as session:
        session.add(Account(name="Acme", slug="acme"))
    ran: list[str] = []
    threads: set[int] = set()

    def on_execute(*_: object) -> None:
        threads.add(threading.get_ident())

    from sqlalchemy import event

    event.listen(db.reader.sync_engine, "before_cursor_execute", on_execute)
    try:
        async with db.session() as session:
            asyncio.get_running_loop().call_soon(ran.append, "other task")
            rows = (await session.exec(text("SELECT name FROM account"))).all()
            for _ in range(5):
                await session.exec(text("SELECT count(*) FROM account"))
            # Six statements, a session begun: not one turn of the loop was needed.
            assert ran == []
    finally:
        event.remove(db.reader.sync_engine, "before_cursor_execute", on_execute)
    assert [row[0] for row in rows] == ["Acme"]
    assert threads == {threading.get_ident()}
    await asyncio.sleep(0)
    assert ran == ["other task"]
    await db.dispose()


async def test_a_sqlite_read_session_cannot_write(tmp_path: object) -> None:
    from sqlalchemy.exc import OperationalError

    db = await _sqlite_db(tmp_path)
    with pytest.raises(OperationalError, match="readonly"):
        async with db.session() as session:
            await session.exec(text("INSERT INTO account (id, name, slug) VALUES ('x', 'y', 'z')"))
    await db.dispose()


async def test_a_sqlite_read_does_not_wait_for_a_writer_holding_the_lock(tmp_path: object) -> None:
    """WAL: a write transaction open on another connection (another process, say) neither
    blocks a read on the loop's thread nor shows it its uncommitted rows."""
    import sqlite3
    import time

    db = await _sqlite_db(tmp_path)
    async with db.transaction() as session:
        session.add(Account(name="Acme", slug="acme"))
    other = sqlite3.connect(f"{tmp_path}/inline.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE account SET name = 'Uncommitted'")
    try:
        started = time.monotonic()
        async with db.session() as session:
            names = (await session.exec(text("SELECT name FROM account"))).all()
        assert time.monotonic() - started < 0.1
        assert [row[0] for row in names] == ["Acme"]
    finally:
        other.execute("ROLLBACK")
        other.close()
    await db.dispose()


async def test_sqlite_uuids_read_back_equal_to_those_written(db: Database) -> None:
    import uuid

    from app.db import uuid_of_hex

    account, stored = await _stored_account(db)
    assert stored.id == account.id
    assert hash(stored.id) == hash(account.id)
    assert str(stored.id) == str(account.id)
    made = uuid_of_hex(account.id.hex)
    assert made == account.id
    assert uuid_of_hex(account.id.hex) is made  # kept
    with pytest.raises(ValueError, match="hexadecimal"):
        uuid_of_hex("not a uuid")
    assert uuid_of_hex(None) is None
    assert isinstance(uuid_of_hex(uuid.uuid4().hex), uuid.UUID)


# A few hundred ms of SQLite's own work in one step, as a totalCount over a big account.
_SLOW_COUNT = (
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000) "
    "SELECT count(*) FROM n"
)


async def _tick_into(ticks: list[float]) -> None:
    """Note the loop's time every 5 ms, for as long as the loop is free to run it."""
    while True:
        ticks.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.005)


async def test_a_sqlite_read_slow_in_sqlite_itself_does_not_hold_the_loop(
    tmp_path: object,
) -> None:
    """A statement that outruns the inline budget goes on on a thread: other requests (a
    health check, a WebSocket's ping) go on meanwhile, and the read answers in full."""
    db = await _sqlite_db(tmp_path)
    ticks: list[float] = []
    ticking = asyncio.create_task(_tick_into(ticks))
    await asyncio.sleep(0.01)
    try:
        async with db.session() as session:
            before = len(ticks)
            (count,) = (await session.exec(text(_SLOW_COUNT))).one()
            during = len(ticks) - before
    finally:
        ticking.cancel()
    assert count == 3_000_000
    assert during >= 5, "the loop was held for the whole statement"
    await db.dispose()


async def test_a_sqlite_read_whose_rows_are_slow_to_step_through_answers_every_row(
    tmp_path: object,
) -> None:
    """The budget also bounds the fetch (the scan after the first row): the statement is run
    again on the thread, in the same snapshot, and every row comes back."""
    db = await _sqlite_db(tmp_path)
    statement = (
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000) "
        "SELECT x FROM n WHERE x % 100000 = 1"
    )
    async with db.session() as session:
        rows = [row[0] for row in (await session.exec(text(statement))).all()]
        assert rows == list(range(1, 3_000_000, 100000))
        # The session goes on as usual after it (same connection, same transaction).
        assert (await session.exec(text("SELECT count(*) FROM account"))).one()[0] == 0
    await db.dispose()


async def test_a_sqlite_read_waits_off_the_loop_for_a_lock_it_cannot_take(
    tmp_path: object,
) -> None:
    """Another connection holding the file in exclusive locking mode (a maintenance script, a
    recovery): the read waits for it on a thread, as reads did before they ran on the loop,
    rather than sleeping on the loop in SQLite's busy handler and then failing with 'database
    is locked' (INTERNAL_ERROR to the client)."""
    import sqlite3
    import threading

    db = await _sqlite_db(tmp_path)
    holder = sqlite3.connect(f"{tmp_path}/inline.db", isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("DELETE FROM account")
    holder.execute("COMMIT")  # keeps the file's exclusive lock until it closes
    threading.Timer(0.6, holder.close).start()
    ticks: list[float] = []
    ticking = asyncio.create_task(_tick_into(ticks))
    await asyncio.sleep(0.01)
    try:
        async with db.session() as session:
            (count,) = (await session.exec(text("SELECT count(*) FROM account"))).one()
    finally:
        ticking.cancel()
    assert count == 0
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert max(gaps) < 0.1, "the loop slept in SQLite's busy handler"
    await db.dispose()
