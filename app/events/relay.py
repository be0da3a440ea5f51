"""The outbox relay: publishes committed event rows to the broker, in sequence order.

Publishing happens before the rows are marked, so a crash in between publishes them again:
delivery is at least once, and subscribers drop sequences they have already seen. Webhook
deliveries for each event are queued in the same transaction that marks it published.
"""

from collections.abc import Callable

from sqlmodel import col, select

from app.db import Database, utcnow
from app.events.broker import Broker, PublishedEvent
from app.events.models import Event
from app.events.webhooks.queue import enqueue_for_events
from app.loops import PollingLoop

BATCH_SIZE = 100


async def relay_pending(db: Database, broker: Broker) -> int:
    """Publish one batch of unpublished events; how many were published."""
    unpublished = select(Event).where(col(Event.published_at).is_(None))
    # Look before locking, so an idle relay never takes SQLite's write lock.
    async with db.session() as session:
        if (await session.exec(unpublished.limit(1))).first() is None:
            return 0
    async with db.transaction() as session:
        events = (
            await session.exec(
                unpublished.order_by(col(Event.sequence))
                .limit(BATCH_SIZE)
                .with_for_update(skip_locked=True)
            )
        ).all()
        now = utcnow()
        for event in events:
            await broker.publish(PublishedEvent.from_row(event))
            event.published_at = now
        await enqueue_for_events(session, events)
    return len(events)


class OutboxRelay(PollingLoop):
    name = "outbox relay"
    poll_interval = 0.1

    def __init__(
        self, db: Database, broker: Broker, on_published: Callable[[], None] | None = None
    ) -> None:
        super().__init__()
        self.db = db
        self.broker = broker
        self.on_published = on_published

    async def run_pass(self) -> None:
        while published := await relay_pending(self.db, self.broker):
            if self.on_published is not None:
                self.on_published()  # webhooks were queued with them
            if published < BATCH_SIZE:
                break
