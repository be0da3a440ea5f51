"""Group commit: one writer task per process runs concurrent units of work in one transaction.

Each unit runs in its own SAVEPOINT, so one unit's error rolls back only that unit and is
raised only to its caller; every caller is answered after the one COMMIT, so an answer is
never given for work a crash could still lose. Units queued while a group runs form the next
group: under load one commit (one fsync on SQLite) and one transaction's bookkeeping serve
many writes, and on SQLite the process's writes stop competing for the write lock.

A *staged* unit (order creation) writes nothing itself: it validates and prices, then returns
its rows as a `Staged`, and needs no savepoint. The group inserts the staged rows of all its
units together, one statement per table (a row that breaks a unique constraint is skipped
and its unit asked again, `on_conflict`), so a group of 64 orders costs a handful of
statements instead of five per order — on SQLite each statement is a hop to the driver's
thread, on PostgreSQL a network round trip.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import UniqueConstraint, inspect
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from app.loops import settle

if TYPE_CHECKING:
    from app.db import Database

log = logging.getLogger(__name__)
T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[Any]]
# Units per transaction: bounds how long one group holds SQLite's write lock.
MAX_GROUP = 64


@dataclass(frozen=True)
class Staged(Generic[T]):
    """A unit's writes, left to its group: `head` (a row of `model`) is inserted unless it
    breaks a unique constraint; `rows` (each `(model, row)`, keyed by column name) go in only
    with it. The unit's answer is then `result`, or, when the head was a duplicate,
    `on_conflict(session)`'s (which may raise the unit's domain error)."""

    model: type[SQLModel]
    head: dict[str, Any]
    result: T
    on_conflict: Callable[[AsyncSession], Awaitable[T]]
    rows: Sequence[tuple[type[SQLModel], dict[str, Any]]] = field(default_factory=list)


async def write_staged(session: AsyncSession, staged: Staged[T] | T) -> T:
    """Write one unit's staged rows now, in the caller's transaction (outside a group)."""
    if not isinstance(staged, Staged):
        return staged
    (answer,) = await _write_all_staged(session, [staged])
    if isinstance(answer, Exception):
        raise answer
    return answer


async def _write_all_staged(session: AsyncSession, units: Sequence[Staged[Any]]) -> list[Any]:
    """Insert the units' heads (one statement per table, duplicates skipped), then the rows of
    the units whose head went in (one statement per table); each unit's answer, in order, or
    the exception its `on_conflict` raised."""
    inserted = await _insert_heads(session, units)
    dependents: dict[type[SQLModel], list[dict[str, Any]]] = {}
    for unit, went_in in zip(units, inserted, strict=True):
        if went_in:
            for model, row in unit.rows:
                dependents.setdefault(model, []).append(row)
    for model, rows in dependents.items():
        await session.exec(_table_of(model).insert(), params=rows)
    answers: list[Any] = []
    for unit, went_in in zip(units, inserted, strict=True):
        if went_in:
            answers.append(unit.result)
            continue
        try:
            answers.append(await unit.on_conflict(session))
        except Exception as refusal:  # a domain error for this unit's caller only
            answers.append(refusal)
    return answers


async def _insert_heads(session: AsyncSession, units: Sequence[Staged[Any]]) -> list[bool]:
    """`INSERT … ON CONFLICT DO NOTHING RETURNING <primary key>` per table, all heads of that
    table in one statement: whether each unit's head was inserted."""
    dialect_insert = (
        sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    )
    returned: set[Any] = set()
    keys: list[Any] = []
    by_model: dict[type[SQLModel], list[dict[str, Any]]] = {}
    for unit in units:
        table = _table_of(unit.model)
        (primary,) = table.primary_key.columns
        keys.append((unit.model, unit.head[primary.key]))
        by_model.setdefault(unit.model, []).append(unit.head)
    for model, heads in by_model.items():
        table = _table_of(model)
        (primary,) = table.primary_key.columns
        # In one order of their unique keys: two groups inserting the same keys (concurrent
        # duplicates of idempotent creates) then wait on each other in the same order on
        # PostgreSQL instead of deadlocking.
        heads = sorted(heads, key=lambda head: _unique_values(table, head))
        statement = dialect_insert(table).on_conflict_do_nothing().returning(primary)
        if len(heads) == 1:  # one row: no executemany, whose RETURNING some drivers lack
            result = await session.exec(statement.values(heads[0]))
        else:
            result = await session.exec(statement, params=heads)
        returned.update((model, key) for key in result.scalars())
    return [key in returned for key in keys]


def _unique_values(table: Any, head: dict[str, Any]) -> tuple[str, ...]:
    """`head`'s values of the table's unique indexes and constraints, in a fixed order."""
    columns = [
        column.key
        for unique in sorted(
            [index for index in table.indexes if index.unique]
            + [c for c in table.constraints if isinstance(c, UniqueConstraint)],
            key=lambda unique: str(unique.name),
        )
        for column in unique.columns
    ]
    return tuple(str(head.get(column, "")) for column in columns)


def _table_of(model: type[SQLModel]) -> Any:
    return inspect(model).local_table


class GroupCommit:
    """`lanes` writer tasks share one queue, each writing one group at a time on its own
    connection: one lane on SQLite (there is one write lock anyway), a few on PostgreSQL, where
    a group's statements are network round trips and several transactions can run at once."""

    def __init__(self, db: "Database", *, lanes: int = 1, max_group: int = MAX_GROUP) -> None:
        self.db = db
        self.lanes = lanes
        self.max_group = max_group
        self._queue: list[tuple[Work, asyncio.Future[Any], bool]] = []
        self._pending = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work` in the next group; its result (or its exception) once that group has
        committed (or failed to)."""
        return await self._enqueue(work, staged=False)

    async def run_staged(self, stage: Callable[[AsyncSession], Awaitable[Staged[T] | T]]) -> T:
        """Run `stage` in the next group, without a savepoint: it may read but must write
        nothing itself (its error then undoes nothing); its staged rows (if it returns a
        `Staged`, else its answer is what it returns) are inserted with the group's others.
        Its answer once that group has committed."""
        return await self._enqueue(stage, staged=True)

    async def _enqueue(self, work: Work, *, staged: bool) -> Any:
        loop = asyncio.get_running_loop()
        if not self._tasks or self._tasks[0].get_loop() is not loop:
            self._pending = asyncio.Event()
            self._tasks = [
                loop.create_task(self._write_groups(), name=f"group commit {lane}")
                for lane in range(self.lanes)
            ]
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((work, future, staged))
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

    async def _write(self, group: list[tuple[Work, asyncio.Future[Any], bool]]) -> None:
        log.debug("group commit of %d writes", len(group))
        outcomes: list[tuple[asyncio.Future[Any], Any, Exception | None]] = []
        staged: list[tuple[asyncio.Future[Any], Staged[Any]]] = []
        try:
            async with self.db.transaction() as session:
                for work, future, is_staged in group:
                    if future.done():  # its caller went away before it ran
                        continue
                    try:
                        if is_staged:
                            result = await work(session)
                            if isinstance(result, Staged):
                                staged.append((future, result))
                                continue
                        else:
                            async with session.begin_nested():
                                result = await work(session)
                    except Exception as refusal:
                        outcomes.append((future, None, refusal))
                        continue
                    outcomes.append((future, result, None))
                if staged:
                    answers = await _write_all_staged(session, [unit for _f, unit in staged])
                    for (future, _unit), answer in zip(staged, answers, strict=True):
                        if isinstance(answer, Exception):
                            outcomes.append((future, None, answer))
                        else:
                            outcomes.append((future, answer, None))
        except Exception as failure:  # the transaction itself failed: nothing was written
            log.exception("group of %d writes failed", len(group))
            for _work, future, _staged in group:
                if not future.done():
                    future.set_exception(failure)
            return
        for future, result, error in outcomes:
            settle(future, result, error)
