"""The outbox relay: gives committed event rows their public `sequence`, in one transaction at a
time, then rings the broker.

Why the relay numbers events rather than the writer: a number handed out when a row is written
(an autoincrement) is not the order transactions commit in, so a reader that has seen 42 can
later find 41 committed. Here sequences come from one place at a time — a transaction-scoped
advisory lock on PostgreSQL, SQLite's single writer — and each relay transaction continues from
the largest committed sequence. A relay transaction therefore starts only after the previous one
committed, and the sequenced rows are always exactly 1..N with no holes: whoever reads "after
N" gets every later event, and nothing numbered below what it has seen can appear later.
Several relays (servers, workers) may run; they take turns.

Webhook deliveries for each event are queued in the same transaction. The doorbell rings after
the commit; if the process dies in between, listeners find the rows at their next poll.
"""

from collections.abc import Callable

from sqlalchemy import func, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db import Database, utcnow
from app.events.broker import Broker
from app.events.models import Event
from app.events.webhooks.queue import enqueue_for_events
from app.loops import PollingLoop

BATCH_SIZE = 500
RELAY_IDLE_TIMEOUT = "5s"
# Any constant shared by every process; "cgevents" in ASCII.
PUBLICATION_LOCK = 0x6367_6576_656E_7473


async def _take_publication_lock(session: AsyncSession) -> None:
    """Wait until no other relay is numbering events. SQLite needs nothing: the transaction
    began with BEGIN IMMEDIATE, so it is the only writer until it commits."""
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        # A holder that freezes (a GC or VM pause, a debugger) would stall every process's
        # events for as long as it is frozen: PostgreSQL ends its session after this idle
        # time inside the transaction, which releases the lock; nothing it did commits.
        connection = await session.connection()
        await connection.execute(
            text(f"SET LOCAL idle_in_transaction_session_timeout = '{RELAY_IDLE_TIMEOUT}'")
        )
        await session.exec(select(func.pg_advisory_xact_lock(PUBLICATION_LOCK)))


async def relay_pending(db: Database, broker: Broker, batch_size: int = BATCH_SIZE) -> int:
    """Publish one batch of committed, unpublished events; how many were published."""
    published, _queued = await _relay_batch(db, broker, batch_size)
    return published


async def _relay_batch(db: Database, broker: Broker, batch_size: int) -> tuple[int, int]:
    """Publish one batch: how many events were published, and how many webhook deliveries
    were queued with them."""
    unpublished = select(Event).where(col(Event.published_at).is_(None))
    # Look before locking, so an idle relay never takes a lock or SQLite's write lock.
    async with db.session() as session:
        if (await session.exec(unpublished.limit(1))).first() is None:
            return 0, 0
    async with db.transaction() as session:
        await _take_publication_lock(session)
        # Read after the lock: under READ COMMITTED this statement sees the previous holder's
        # commit, so numbering continues from its last sequence.
        last = (await session.exec(select(func.max(Event.sequence)))).one() or 0
        events = (
            await session.exec(unpublished.order_by(col(Event.position)).limit(batch_size))
        ).all()
        now = utcnow()
        for offset, event in enumerate(events, start=1):
            event.sequence = last + offset
            event.published_at = now
        await session.flush()
        queued = await enqueue_for_events(session, events)
    if events:
        await broker.ring(last + len(events))
    return len(events), queued


class OutboxRelay(PollingLoop):
    name = "outbox relay"
    poll_interval = 0.1

    def __init__(
        self, db: Database, broker: Broker, on_published: Callable[[], None] | None = None
    ) -> None:
        """`on_published` is called after each batch that queued webhook deliveries."""
        super().__init__()
        self.db = db
        self.broker = broker
        self.on_published = on_published

    async def run_pass(self) -> None:
        while True:
            published, queued = await _relay_batch(self.db, self.broker, BATCH_SIZE)
            # Woken only for webhooks queued: a pass of the dispatcher for a batch that queued
            # none (no endpoint, no callback URL) was a session, a SELECT and its loop turns
            # per relay pass, on the loop that answers requests, during every burst. Retries
            # come due on the dispatcher's own poll.
            if queued and self.on_published is not None:
                self.on_published()
            if published < BATCH_SIZE:
                break
