"""Async engine, sessions and transactions for SQLite and PostgreSQL, plus shared column types."""

import asyncio
import collections
import enum
import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, Enum, Select, event, insert, inspect, text
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.sql import sqltypes
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.data_versions import track_data_versions
from app.group_commit import GroupCommit, Staged
from app.inline_sqlite import inline_connection
from app.memo import Memo

T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Group-commit writers per process on PostgreSQL (each holds one pooled connection while it
# writes): enough to overlap round trips, few enough that groups stay large.
POSTGRESQL_WRITE_LANES = 4
CONNECT_TIMEOUT_SECONDS = 5
# A pooled PostgreSQL connection idle this long is pinged before use (see _ping_idle_connections).
PING_AFTER_IDLE_SECONDS = 1.0


# Stable constraint names, so migrations can alter and drop them on both backends.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class DatabaseConfigError(RuntimeError):
    """CG_DATABASE_URL names a database we cannot use; the message says why and what to do."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _SQLiteUuid(sqltypes.Uuid[uuid.UUID]):
    """SQLAlchemy's `Uuid` on SQLite (32 hex characters), read back through `uuid_of_hex`:
    `uuid.UUID(hex)` was the largest single cost of a nested read (400 ids per page, most of
    them the same few projects, bundles and batches)."""

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if not self.as_uuid:
            return super().result_processor(dialect, coltype)
        return uuid_of_hex


_UUIDS_KEPT = 4096  # a page's projects, bundles and batches recur: their ids are kept


def uuid_of_hex(value: str | None) -> uuid.UUID | None:
    """`uuid.UUID(value)` for an id as SQLAlchemy stores it on SQLite, kept for the next time
    it is read: a page's allocations name the same few projects, bundles and batches, and the
    constructor costs more than 2 µs here (a dict lookup, 0.15)."""
    if value is None:
        return None
    kept = _kept_uuids.get(value)
    if kept is None:
        kept = _kept_uuids.keep(value, uuid.UUID(value))
    return kept


_kept_uuids: Memo[str, uuid.UUID] = Memo(_UUIDS_KEPT)


def _read_uuids_fast(engine: AsyncEngine) -> None:
    dialect = engine.dialect
    dialect.colspecs = {**dialect.colspecs, sqltypes.Uuid: _SQLiteUuid}


def enum_column_type(enum_class: type[enum.Enum]) -> Enum:
    """Store an enum by value as a short string with a CHECK, not as a native PostgreSQL type,
    so that adding a member is a plain migration on both backends."""
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        name=enum_class.__name__.lower(),
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, and transactions we begin ourselves (on the writing
    engine; the reading one is `_inline_reader`'s).

    pysqlite's own BEGIN is deferred; a deferred transaction that reads and then writes after
    another connection committed fails with "database is locked" whatever the busy timeout.
    Writers therefore ask for BEGIN IMMEDIATE (see `Database.transaction`).
    """

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    _begin_ourselves(engine)


def _begin_ourselves(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _inline_reader(engine: AsyncEngine) -> AsyncEngine:
    """An engine for reads of the same SQLite file, run on the loop's thread
    (app/inline_sqlite.py): read-only connections, each session one deferred transaction."""
    path = engine.url.database
    assert path is not None
    reader = create_async_engine(
        engine.url,
        echo=engine.echo,
        async_creator=lambda: inline_connection(path, SQLITE_BUSY_TIMEOUT_MS),
    )
    _begin_ourselves(reader)
    _read_uuids_fast(reader)
    return reader


@dataclass(frozen=True)
class PoolSize:
    """PostgreSQL connections per process: `size` kept open, up to `overflow` more under load.
    Every request reads (authentication at least) on a connection of its own, while creates
    share the group writer's one, so the pool is sized for concurrent requests."""

    size: int = 10
    overflow: int = 30


def create_engine(
    url: URL | str, *, echo: bool = False, pool: PoolSize = PoolSize()
) -> AsyncEngine:
    """An async engine for a SQLite or PostgreSQL URL, or a DatabaseConfigError saying why not."""
    try:
        engine = _create_engine(url, echo=echo, pool=pool)
    except (ArgumentError, NoSuchModuleError, ModuleNotFoundError) as error:
        raise DatabaseConfigError(
            f"CG_DATABASE_URL cannot be used ({error}). Use sqlite+aiosqlite:///path/to/file.db "
            "or postgresql+asyncpg://user@host:5432/dbname."
        ) from error
    except SQLAlchemyError as error:  # e.g. a sync driver ("the asyncio extension requires...")
        raise DatabaseConfigError(f"CG_DATABASE_URL cannot be used: {error}") from error
    return engine


def _create_engine(url: URL | str, *, echo: bool, pool: PoolSize) -> AsyncEngine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.get_driver_name() != "aiosqlite":
            raise DatabaseConfigError("SQLite needs the async driver: use sqlite+aiosqlite:///…")
        if parsed.database in (None, "", ":memory:"):
            raise DatabaseConfigError(
                "An in-memory SQLite database is private to one connection; use a file path."
            )
        engine = create_async_engine(parsed, echo=echo)
        _configure_sqlite(engine)
        _read_uuids_fast(engine)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "asyncpg":
            raise DatabaseConfigError(
                "PostgreSQL needs the async driver: use postgresql+asyncpg://…"
            )
        engine = create_async_engine(
            parsed,
            echo=echo,
            pool_size=pool.size,
            max_overflow=pool.overflow,
            connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
        )
        _ping_idle_connections(engine)
        return engine
    raise DatabaseConfigError(
        f"Unsupported database {backend!r} in CG_DATABASE_URL: use SQLite (sqlite+aiosqlite) "
        "or PostgreSQL (postgresql+asyncpg)."
    )


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """SQLAlchemy's `pool_pre_ping` with a grace period: a connection back in the pool for
    less than PING_AFTER_IDLE_SECONDS is handed out without a ping. Under load connections go
    round in milliseconds, and the ping was one more round trip for every session — the
    ordinary query's, the relay's, the feed's — each one more wait for a turn of a busy event
    loop. A connection that has been idle longer (a firewall may have dropped it silently)
    is still pinged; a dead one is replaced, as with pool_pre_ping. One the server closed (a
    restart, a failover, pg_terminate_backend, an idle killer) is replaced however recently
    it was used: asyncpg has seen its socket close, which costs no round trip to ask."""

    @event.listens_for(engine.sync_engine, "checkin")
    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        driver = record.driver_connection
        if driver is not None and driver.is_closed():
            raise DisconnectionError("pooled connection was closed by the server")
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < PING_AFTER_IDLE_SECONDS:
            return  # new (just connected) or recently used
        try:
            dbapi_connection.ping()
        except Exception as error:
            raise DisconnectionError(f"pooled connection is gone: {error}") from error


class WriterSession(Session):
    """The sessions of `Database.transaction()`: each commit advances the data versions of the
    scopes it wrote, in the same transaction (app/data_versions.py; the response cache's key)."""


track_data_versions(WriterSession)


class Database:
    """One engine and its sessions. Sessions are short and never shared between tasks."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        # PostgreSQL reads run outside a transaction: under READ COMMITTED every statement
        # sees its own snapshot either way, and BEGIN and ROLLBACK were two round trips of the
        # four an ordinary query's read took, each a wait on a loaded machine. SQLite keeps its
        # deferred transaction: there it is one snapshot for all of a session's reads.
        # On SQLite, reads run on the loop's thread (app/inline_sqlite.py).
        self.reader = (
            _inline_reader(engine)
            if self.is_sqlite
            else engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._sessions = async_sessionmaker(
            self.reader, class_=AsyncSession, expire_on_commit=False, autoflush=False
        )
        writer = engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else engine
        self._writer_sessions = async_sessionmaker(
            writer,
            class_=AsyncSession,
            sync_session_class=WriterSession,
            expire_on_commit=False,
            autoflush=False,
        )
        # SQLite has one write lock per file: this process's writers queue for it here, in
        # order, rather than in SQLite's busy handler, which sleeps up to 100 ms between tries.
        self._write_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self.writer = GroupCommit(self, lanes=1 if self.is_sqlite else POSTGRESQL_WRITE_LANES)

    @classmethod
    def from_url(
        cls, url: URL | str, *, echo: bool = False, pool: PoolSize = PoolSize()
    ) -> "Database":
        return cls(create_engine(url, echo=echo, pool=pool))

    @property
    def engines(self) -> tuple[AsyncEngine, ...]:
        """The engines with pools of their own: on SQLite the writing one and the reading one,
        on PostgreSQL one (reads use its pool with options). For listening to every statement."""
        return (self.engine, self.reader) if self.is_sqlite else (self.engine,)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A read session: on SQLite, one deferred transaction rolled back at the end; on
        PostgreSQL, each statement on its own (autocommit, READ COMMITTED's visibility)."""
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: committed when the block ends, rolled back if it raises."""
        async with self._write_turn(), self._writer_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def _write_turn(self) -> AsyncIterator[None]:
        if not self.is_sqlite:
            yield
            return
        loop = asyncio.get_running_loop()
        lock = self._write_locks.setdefault(loop, asyncio.Lock())
        async with lock:
            yield

    async def grouped(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work` as one savepoint of a transaction shared with concurrent writes (see
        app/group_commit.py); answered after the commit."""
        return await self.writer.run(work)

    async def grouped_staged(self, stage: Callable[[AsyncSession], Awaitable[Staged[T] | T]]) -> T:
        """Run `stage`, which writes nothing itself, in a group of concurrent writes, without
        a savepoint; its staged rows are inserted with the group's others (see
        app/group_commit.py); answered after the commit."""
        return await self.writer.run_staged(stage)

    async def check(self) -> None:
        """Raise DatabaseConfigError unless the database answers within the connect timeout."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS + 1):
                async with self.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except (OSError, TimeoutError, SQLAlchemyError) as error:
            url = self.engine.url.render_as_string(hide_password=True)
            reason = getattr(error, "orig", None) or error
            raise DatabaseConfigError(f"Cannot reach the database at {url}: {reason}") from error

    async def dispose(self) -> None:
        await self.writer.close()
        if self.is_sqlite:  # its own engine (on PostgreSQL, the same pool with options)
            await self.reader.dispose()
        await self.engine.dispose()


def plain_rows(statement: SelectOfScalar[Any]) -> Select[Any]:
    """`statement` (a select of one model narrowed by `where` clauses, as the domains' `*_of`
    functions return) returning plain rows with the model's attribute names instead of ORM
    instances: no identity map or instance state to build, for reads whose rows are only
    mapped to GraphQL types. Its FROM and WHERE are kept; anything else is not."""
    model = statement.column_descriptions[0]["entity"]
    # Not `select(...).select_from(*statement.get_final_froms())`: that compiles the statement
    # to find its FROM list, 3 ms of a 20 ms nested read. `with_only_columns` keeps the FROM
    # list (joins included) as built; the class is changed from SQLModel's SelectOfScalar,
    # which `session.exec` reads as the first column's scalars, to a select of rows.
    narrowed = statement.with_only_columns(*_labelled_columns(model), maintain_column_froms=True)
    plain: Select[Any] = Select.__new__(Select)
    plain.__dict__.update(narrowed.order_by(None).limit(None).offset(None).__dict__)
    return plain


@functools.cache
def _labelled_columns(model: Any) -> tuple[Any, ...]:
    # Labelled with the attribute names, as Core rows (pagination reads them so) carry the
    # column names otherwise (`metadata`, not `metadata_`). Built once per model.
    return tuple(column.label(column.key) for column in model_columns(model))


def model_columns(model: Any) -> list[Any]:
    """A model's mapped columns, labelled with its attribute names (`metadata_`, not
    `metadata`), so that a plain row reads like an instance: `row.mass_grams`."""
    return [getattr(model, column.key) for column in inspect(model).column_attrs]


class FlatColumns:
    """Several groups of columns in one flat select, each row split back into one plain row
    per group (a named tuple with the columns' attribute names: `project.name`). Read through
    Core (`rows_of`), this costs a fraction of the ORM's column bundles: no ORM result
    machinery, no per-bundle row objects built by Python callbacks."""

    def __init__(self, groups: Sequence[tuple[str, Sequence[Any]]]) -> None:
        self.columns: list[Any] = []
        self._parts: list[tuple[int, int, Callable[[Any], Any]]] = []
        for name, columns in groups:
            keys = [column.key for column in columns]
            start = len(self.columns)
            self.columns += [
                column.label(f"{name}__{key}") for column, key in zip(columns, keys, strict=True)
            ]
            plain_row = collections.namedtuple(f"{name}_row", keys)  # type: ignore[misc]
            self._parts.append((start, len(self.columns), plain_row._make))

    def split(self, row: Any) -> tuple[Any, ...]:
        return tuple(make(row[start:end]) for start, end, make in self._parts)


async def core_rows(session: AsyncSession, statement: Any) -> Sequence[Any]:
    """A Core statement's rows on the session's connection (and in its transaction)."""
    connection = await session.connection()
    return (await connection.execute(statement)).all()


def column_values(instance: SQLModel) -> dict[str, Any]:
    """A model instance as the row to insert, keyed by column name."""
    return {
        attribute.columns[0].key: getattr(instance, attribute.key)
        for attribute in inspect(type(instance)).column_attrs
    }


async def insert_rows(
    session: AsyncSession, model: type[SQLModel], rows: Sequence[dict[str, Any]]
) -> None:
    """Insert rows (keyed by column name) into a model's table with one Core statement
    (executemany), without the ORM's unit-of-work bookkeeping: for hot write paths whose rows
    are not read back in the session."""
    if rows:
        await session.exec(insert(inspect(model).local_table), params=list(rows))
