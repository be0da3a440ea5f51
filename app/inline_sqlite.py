"""SQLite reads run at once on the event loop's thread, not on aiosqlite's worker thread.

aiosqlite runs every step of a statement (cursor, execute, each fetch, close) on a thread of
its own and wakes the event loop for each answer: a hop of about 90 µs of CPU here, and a
wait for a turn of the loop, for work SQLite does in a few microseconds. A nested read of
twenty orders spent 15 ms in those hops and 0.4 ms in SQLite (bench/README.md, "Reads on
the loop's thread"). `InlineConnection` is an `aiosqlite.Connection` whose queue runs each
call as it is queued, so that every awaitable it hands SQLAlchemy is already done: a read
session's statements run to the end without giving up the loop.

Only reads go through it (`Database.session()` on SQLite, with `PRAGMA query_only`). In WAL
mode a reader never waits for a writer (nor a writer for it), so a read usually takes as long
as SQLite's own work; writes, which wait for the write lock, keep aiosqlite's thread. Two
cases would hold the loop, and go on on a thread of the connection's own instead (started at
the first of them), as every call did with aiosqlite:
- a statement slow in SQLite itself (a `totalCount` over an account of 300,000 orders takes
  0.4 s, and costs the client 2 points): a progress handler stops a statement's first step,
  or the fetch of its rows, once it has run INLINE_BUDGET_SECONDS on the loop, and it is run
  again from the start on the thread, in the same transaction (one snapshot: a read has
  nothing to undo);
- a lock the reader cannot take (another connection recovering the WAL after a crash, or
  holding the file in exclusive locking mode): the busy timeout here is 0, so the loop never
  sleeps in SQLite's busy handler, and the statement waits on the thread with the writers'
  busy timeout, where it used to fail after 200 ms ("database is locked", INTERNAL_ERROR).
A connection's later calls queue behind those on its thread, in order.
"""

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import aiosqlite

from app.loops import settle

# How long one call (a statement's first step, or the fetch of its rows) may run on the loop's
# thread before SQLite is told to stop it and it is run again on a thread of its own.
INLINE_BUDGET_SECONDS = 0.005
_PROGRESS_STEPS = 1000  # SQLite VM instructions between two looks at the clock
_RETRIED = (sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_BUSY)


class _RunAtOnce:
    """aiosqlite's queue of (future, call) for its worker thread, run as it is filled; a call
    over its budget, or one that would wait for a lock, goes on on this connection's thread."""

    def __init__(self, busy_timeout_ms: int) -> None:
        self.busy_timeout_ms = busy_timeout_ms  # off the loop, a lock is waited for this long
        self.connection: sqlite3.Connection | None = None
        self.deadline: float | None = None  # armed while a call runs on the loop's thread
        self._thread: ThreadPoolExecutor | None = None  # started at the first fallback
        self._in_flight = 0  # calls queued on the thread: later calls queue behind them
        self._executed: tuple[sqlite3.Cursor, Callable[[], Any]] | None = None

    def over_budget(self) -> int:
        """SQLite's progress handler: non-zero stops the statement (SQLITE_INTERRUPT)."""
        deadline = self.deadline
        return 1 if deadline is not None and time.perf_counter() > deadline else 0

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, call = item
        again = self._again(call)
        if self._in_flight:  # keep the connection's calls in order, behind those on the thread
            self._off_loop(future, again or call, patient=again is not None)
            return
        self.deadline = time.perf_counter() + INLINE_BUDGET_SECONDS if again else None
        try:
            result = call()
        except BaseException as error:
            self.deadline = None  # before the thread may run it again
            if (
                future is not None
                and again is not None
                and isinstance(error, sqlite3.OperationalError)
                and (error.sqlite_errorcode & 0xFF) in _RETRIED  # BUSY_RECOVERY, BUSY_SNAPSHOT…
            ):
                # Stopped before it answered, or refused a lock: a read, so running it again
                # (in the same transaction, the same snapshot) is what it would have answered.
                self._off_loop(future, again, patient=True)
            elif future is not None:
                settle(future, None, error)  # handed to the awaiting caller, as aiosqlite does
            return
        self.deadline = None
        if future is not None:
            settle(future, result, None)

    def _again(self, call: Callable[[], Any]) -> Callable[[], Any] | None:
        """How to run `call` again from the start if it is stopped, or None (not bounded):
        a cursor's `execute`, and the `fetchall` right after it (executed again, then fetched:
        rows stepped through before the stop are not lost)."""
        if not isinstance(call, partial):
            return None
        method = call.func
        cursor = getattr(method, "__self__", None)
        name = getattr(method, "__name__", "")
        if not isinstance(cursor, sqlite3.Cursor):
            return None
        if name == "execute":
            self._executed = (cursor, call)
            return call
        executed, self._executed = self._executed, None
        if name == "fetchall" and executed is not None and executed[0] is cursor:
            execute = executed[1]
            return lambda: (execute(), cursor.fetchall())[1]
        return None

    def _off_loop(
        self, future: asyncio.Future[Any] | None, call: Callable[[], Any], *, patient: bool
    ) -> None:
        """Run `call` on this connection's thread and settle `future` on the loop; `patient`
        (a statement): with a busy timeout, waiting for a lock as aiosqlite's thread did."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a connection garbage-collected): nobody to hand it to
            call()
            return
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="inline-sqlite")
        connection = self.connection
        self._in_flight += 1

        def run() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                if patient and connection is not None:
                    # No progress handler here: each call of it takes the GIL from the loop.
                    connection.set_progress_handler(None, 0)
                    connection.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
                    try:
                        result = call()
                    finally:
                        connection.execute("PRAGMA busy_timeout=0")
                        connection.set_progress_handler(self.over_budget, _PROGRESS_STEPS)
                else:
                    result = call()
            except BaseException as failure:  # handed to the awaiting caller
                error = failure
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                loop.call_soon_threadsafe(self._done, future, result, error)

        self._thread.submit(run)

    def _done(
        self, future: asyncio.Future[Any] | None, result: Any, error: BaseException | None
    ) -> None:
        self._in_flight -= 1
        if future is not None:
            settle(future, result, error)

    def shutdown(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection without its thread: each call runs on the caller's thread,
    within INLINE_BUDGET_SECONDS, else on a thread of the connection's own."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], busy_timeout_ms: int) -> None:
        self._run = run = _RunAtOnce(busy_timeout_ms)

        def connect() -> sqlite3.Connection:  # over `run`, not `self`: no cycle through it
            connection = connector()
            connection.set_progress_handler(run.over_budget, _PROGRESS_STEPS)
            run.connection = connection
            return connection

        super().__init__(connect, iter_chunk_size=64)
        self._tx = self._run  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()  # no worker thread to start

    def stop(self) -> asyncio.Future[Any] | None:
        future = super().stop()
        self._run.shutdown()
        return future


def inline_connection(path: str, busy_timeout_ms: int) -> InlineConnection:
    """An unopened read connection to the SQLite file at `path` (SQLAlchemy's async_creator
    awaits it); off the loop it waits `busy_timeout_ms` for a lock, as the writers do."""

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(
            path,
            timeout=0,  # never sleep on the loop in the busy handler: wait on the thread
            isolation_level=None,  # we emit BEGIN ourselves
            check_same_thread=False,  # opened on the loop's thread, used on its own too
        )
        connection.execute("PRAGMA query_only = ON")
        return connection

    return InlineConnection(connect, busy_timeout_ms)
