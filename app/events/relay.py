"""The outbox relay: publishes committed event rows to the broker, in sequence order.

Publishing happens before the rows are marked, so a crash in between publishes them again:
delivery is at least once, and subscribers drop sequences they have already seen. Webhook
deliveries for each event are queued in the same transaction that marks it published.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlmodel import col, select

from app.db import Database, utcnow
from app.events.broker import Broker, PublishedEvent
from app.events.models import Event
from app.events.webhooks import enqueue_for_event

log = logging.getLogger(__name__)
BATCH_SIZE = 100
POLL_INTERVAL_SECONDS = 0.1
ERROR_BACKOFF_SECONDS = 1.0


async def relay_pending(db: Database, broker: Broker) -> int:
    """Publish one batch of unpublished events; how many were published."""
    async with db.transaction() as session:
        events = (
            await session.exec(
                select(Event)
                .where(col(Event.published_at).is_(None))
                .order_by(col(Event.sequence))
                .limit(BATCH_SIZE)
                .with_for_update(skip_locked=True)
            )
        ).all()
        now = utcnow()
        for event in events:
            await broker.publish(PublishedEvent.from_row(event))
            await enqueue_for_event(session, event)
            event.published_at = now
    return len(events)


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        poll_interval: float = POLL_INTERVAL_SECONDS,
        on_published: Callable[[], None] | None = None,
    ):
        self.db = db
        self.broker = broker
        self.poll_interval = poll_interval
        self.on_published = on_published
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                published = await relay_pending(self.db, self.broker)
                while published:
                    if self.on_published is not None:
                        self.on_published()  # webhooks were queued with them
                    if published < BATCH_SIZE:
                        break
                    published = await relay_pending(self.db, self.broker)
            except Exception:
                log.exception("outbox relay pass failed")
                await asyncio.sleep(ERROR_BACKOFF_SECONDS)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
