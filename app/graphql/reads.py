"""The read sessions of one operation: one shared, serialised session for an HTTP query's
loaders and resolvers, or a short session per use everywhere else."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager

from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app.db import Database


class RequestReads:
    """Where the resolvers and dataloaders of one operation read from.

    graphql-core resolves sibling fields concurrently, and an AsyncSession must never be used
    by two tasks at once. A shared session therefore serves one use at a time (a lock around
    each dataloader batch or resolver read): an HTTP query reads all its relations through one
    session and one connection, which `close` gives back when the operation ends.

    Sharing is switched on per operation (`share`), for HTTP queries only: a mutation's payload
    must see what its root field just committed, and a WebSocket's context outlives each
    event, whose resolution must see fresh data; both keep a short session per use.
    """

    def __init__(self, db: Database, *, shareable: bool = False) -> None:
        self.db = db
        self.shareable = shareable
        self._shared = False
        self._lock = asyncio.Lock()
        self._stack: AsyncExitStack | None = None
        self._session: AsyncSession | None = None

    @property
    def shared(self) -> bool:
        """Whether this operation reads through one session (an HTTP query)."""
        return self._shared

    def share(self) -> None:
        """Serve every later read of this operation from one session (if shareable)."""
        self._shared = self.shareable

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        if not self._shared:
            async with self.db.session() as session:
                yield session
            return
        async with self._lock:
            if self._session is None:
                self._stack = AsyncExitStack()
                self._session = await self._stack.enter_async_context(self.db.session())
            try:
                yield self._session
            except BaseException:
                # A failed statement may have aborted the transaction (PostgreSQL): the next
                # read gets a new session, as it would have had one of its own before.
                await self._release()
                raise

    async def close(self) -> None:
        """Give the shared session back (its transaction is rolled back; reads only)."""
        if self._stack is None and not self._lock.locked():
            # Nothing open and nobody opening one (a task opening it holds the lock, and
            # sets `_stack` before its first await): a cache hit's case, at no lock's cost.
            self._shared = False
            return
        async with self._lock:
            self._shared = False
            await self._release()

    async def _release(self) -> None:
        stack, self._stack, self._session = self._stack, None, None
        if stack is not None:
            await stack.aclose()


class OperationReads(SchemaExtension):
    """Shares the read session of an HTTP query across its resolvers (see RequestReads) and
    gives it back when the operation ends, whatever happened."""

    def _reads(self) -> RequestReads | None:
        reads = getattr(self.execution_context.context, "reads", None)
        return reads if isinstance(reads, RequestReads) else None

    def on_execute(self) -> Iterator[None]:
        reads = self._reads()
        if reads is not None and self.execution_context.operation_type is OperationType.QUERY:
            reads.share()
        yield

    async def on_operation(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if (reads := self._reads()) is not None:
                await reads.close()
