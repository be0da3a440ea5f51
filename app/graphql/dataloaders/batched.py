"""Generic loaders over the domain's batch reads: one domain call per batch, in the operation's
read session (app/graphql/reads.py)."""

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from aiodataloader import DataLoader
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.service import Principal
from app.graphql.reads import RequestReads

Row = TypeVar("Row")
Value = TypeVar("Value")

FetchRows = Callable[[AsyncSession, Principal, Sequence[uuid.UUID]], Awaitable[Sequence[Row]]]
FetchMapping = Callable[
    [AsyncSession, Principal, Sequence[uuid.UUID]], Awaitable[Mapping[uuid.UUID, Value]]
]


def loads_are_kept(reads: RequestReads) -> bool:
    """A loader keeps what it loaded only within one read session (an HTTP query's). Elsewhere
    rows change between two loads of one operation — a mutation's root fields each commit
    before the next runs, a socket's operations and events outlive each other — so every
    load reads (loads of one tick are still batched)."""
    return reads.shared


class RowsByIdLoader(DataLoader, Generic[Row]):
    """Rows by id through a scoped domain read; unknown or foreign ids load as None."""

    def __init__(
        self, reads: RequestReads, principal: Principal | None, fetch: FetchRows[Row]
    ) -> None:
        super().__init__()
        self.reads, self.principal, self.fetch = reads, principal, fetch

    @property
    def cache(self) -> bool:  # type: ignore[override]
        return loads_are_kept(self.reads)

    async def batch_load_fn(self, ids: Sequence[uuid.UUID]) -> list[Row | None]:
        if self.principal is None:
            return [None] * len(ids)
        async with self.reads.session() as session:
            rows = await self.fetch(session, self.principal, list(set(ids)))
        by_id: dict[Any, Row] = {row.id: row for row in rows}  # type: ignore[attr-defined]
        return [by_id.get(row_id) for row_id in ids]

    async def load_alone(self, row_id: uuid.UUID) -> Row | None:
        """`load` for a caller no other load can join (the only field at an operation's
        root): read at once in the caller's task, without the three loop turns a batch takes
        (aiodataloader's `call_soon`, its dispatch task, then the batch's task). On a busy
        process each turn waits behind everything else ready to run: measured ~10 ms apiece
        in a fan-out burst (bench/fanout.py)."""
        if self.cache and (cached := self._cache.get(row_id)) is not None:
            return await cached
        [row] = await self.batch_load_fn([row_id])
        if self.cache:
            self.prime(row_id, row)
        return row


class MappedLoader(DataLoader, Generic[Value]):
    """Values keyed by id (a list of children, a sum) through a scoped domain read."""

    def __init__(
        self,
        reads: RequestReads,
        principal: Principal | None,
        fetch: FetchMapping[Value],
        missing: Callable[[], Value],
    ) -> None:
        super().__init__()
        self.reads, self.principal, self.fetch, self.missing = reads, principal, fetch, missing

    @property
    def cache(self) -> bool:  # type: ignore[override]
        return loads_are_kept(self.reads)

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[Value]:
        if self.principal is None:
            return [self.missing() for _ in keys]
        async with self.reads.session() as session:
            found = await self.fetch(session, self.principal, list(set(keys)))
        return [found[key] if key in found else self.missing() for key in keys]
