"""The outbox relay: publishes committed event rows to the broker, in sequence order.

Publishing happens before the rows are marked, so a crash in between publishes them again:
delivery is at least once, and subscribers drop sequences they have already seen.
"""

import asyncio
import contextlib
import logging

from sqlmodel import col, select

from app.db import Database, utcnow
from app.events.broker import Broker, PublishedEvent
from app.events.models import Event

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
            event.published_at = now
    return len(events)


class OutboxRelay:
    def __init__(self, db: Database, broker: Broker, poll_interval: float = POLL_INTERVAL_SECONDS):
        self.db = db
        self.broker = broker
        self.poll_interval = poll_interval
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
                while await relay_pending(self.db, self.broker) == BATCH_SIZE:
                    pass
            except Exception:
                log.exception("outbox relay pass failed")
                await asyncio.sleep(ERROR_BACKOFF_SECONDS)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
