"""Group commit: one writer task per process runs concurrent units of work in one transaction.

Each unit runs in its own SAVEPOINT, so one unit's error rolls back only that unit and is
raised only to its caller; every caller is answered after the one COMMIT, so an answer is
never given for work a crash could still lose. Units queued while a group runs form the next
group: under load one commit (one fsync on SQLite) and one transaction's bookkeeping serve
many writes, and on SQLite the process's writes stop competing for the write lock.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

if TYPE_CHECKING:
    from app.db import Database

log = logging.getLogger(__name__)
T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[Any]]
# Units per transaction: bounds how long one group holds SQLite's write lock.
MAX_GROUP = 64


class GroupCommit:
    """`lanes` writer tasks share one queue, each writing one group at a time on its own
    connection: one lane on SQLite (there is one write lock anyway), a few on PostgreSQL, where
    a group's statements are network round trips and several transactions can run at once."""

    def __init__(self, db: "Database", *, lanes: int = 1, max_group: int = MAX_GROUP) -> None:
        self.db = db
        self.lanes = lanes
        self.max_group = max_group
        self._queue: list[tuple[Work, asyncio.Future[Any]]] = []
        self._pending = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work` in the next group; its result (or its exception) once that group has
        committed (or failed to)."""
        loop = asyncio.get_running_loop()
        if not self._tasks or self._tasks[0].get_loop() is not loop:
            self._pending = asyncio.Event()
            self._tasks = [
                loop.create_task(self._write_groups(), name=f"group commit {lane}")
                for lane in range(self.lanes)
            ]
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((work, future))
        self._pending.set()
        return await future

    async def close(self) -> None:
        """Stop the writer tasks (at shutdown, once requests are answered)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _write_groups(self) -> None:
        while True:
            await self._pending.wait()
            group, self._queue = self._queue[: self.max_group], self._queue[self.max_group :]
            if not self._queue:
                self._pending.clear()
            if group:
                await self._write(group)

    async def _write(self, group: list[tuple[Work, asyncio.Future[Any]]]) -> None:
        log.debug("group commit of %d writes", len(group))
        outcomes: list[tuple[asyncio.Future[Any], Any, Exception | None]] = []
        try:
            async with self.db.transaction() as session:
                for work, future in group:
                    if future.done():  # its caller went away before it ran
                        continue
                    try:
                        async with session.begin_nested():
                            result = await work(session)
                    except Exception as refusal:
                        outcomes.append((future, None, refusal))
                        continue
                    outcomes.append((future, result, None))
        except Exception as failure:  # the transaction itself failed: nothing was written
            log.exception("group of %d writes failed", len(group))
            for _work, future in group:
                if not future.done():
                    future.set_exception(failure)
            return
        for future, result, error in outcomes:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
