"""SQLite reads run at once on the event loop's thread, not on aiosqlite's worker thread.

aiosqlite runs every step of a statement (cursor, execute, each fetch, close) on a thread of
its own and wakes the event loop for each answer: a hop of about 90 µs of CPU here, and a
wait for a turn of the loop, for work SQLite does in a few microseconds. A nested read of
twenty orders spent 15 ms in those hops and 0.4 ms in SQLite (bench/README.md, "Reads on
the loop's thread"). `InlineConnection` is an `aiosqlite.Connection` whose queue runs each
call as it is queued, so that every awaitable it hands SQLAlchemy is already done: a read
session's statements run to the end without giving up the loop.

Only reads go through it (`Database.session()` on SQLite, with `PRAGMA query_only`). In WAL
mode a reader never waits for a writer (nor a writer for it), so a read takes as long as
SQLite's own work; writes, which wait for the write lock, keep aiosqlite's thread. The busy
timeout of these connections is short (INLINE_BUSY_TIMEOUT_MS): a reader is only kept
waiting while another connection recovers the WAL after a crash, and the loop must not sleep
long in SQLite's busy handler.
"""

import asyncio
import sqlite3
from collections.abc import Callable, Generator
from typing import Any

import aiosqlite

INLINE_BUSY_TIMEOUT_MS = 200


class _RunAtOnce:
    """aiosqlite's queue of (future, call) for its worker thread, run as it is filled."""

    @staticmethod
    def put_nowait(item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, call = item
        try:
            result = call()
        except BaseException as error:  # handed to the awaiting caller, as aiosqlite does
            if future is not None and not future.done():
                future.set_exception(error)
            return
        if future is not None and not future.done():
            future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection without its thread: each call runs on the caller's thread."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _RunAtOnce()  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()  # no worker thread to start


def inline_connection(path: str) -> InlineConnection:
    """An unopened read connection to the SQLite file at `path` (SQLAlchemy's async_creator
    awaits it)."""

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(
            path,
            timeout=INLINE_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # we emit BEGIN ourselves
            check_same_thread=False,  # opened and used on the loop's thread, closed by the pool
        )
        connection.execute("PRAGMA query_only = ON")
        return connection

    return InlineConnection(connect)
