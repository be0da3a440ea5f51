"""A process's background loops: fulfilment worker (optional), outbox relay, webhook sender,
and the live event feed its subscribers read (started by the first subscriber)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from app.config import Settings
from app.db import Database
from app.events.broker import Broker, create_broker
from app.events.feed import EventFeed
from app.events.relay import OutboxRelay
from app.events.webhooks.dispatcher import WebhookDispatcher
from app.offsets import service as offsets
from app.offsets.models import OffsetOrder
from app.offsets.worker import FulfilmentWorker


class Background:
    def __init__(self, db: Database, settings: Settings, *, run_worker: bool) -> None:
        self.broker: Broker = create_broker(
            settings.redis_url,
            timeout_seconds=settings.redis_timeout_seconds,
            pause_seconds=settings.redis_pause_seconds,
        )
        self.webhooks = WebhookDispatcher(
            db,
            settings.secret_key.get_secret_value(),
            allow_private=settings.allow_private_webhooks,
        )
        self.relay = OutboxRelay(db, self.broker, on_published=self.webhooks.wake)
        self.feed: EventFeed[OffsetOrder] = EventFeed(db, self.broker, offsets.orders_of_changes)
        self.worker = (
            FulfilmentWorker(
                db, settings.secret_key.get_secret_value(), on_fulfilled=self.relay.wake
            )
            if run_worker
            else None
        )
        self._stopped = asyncio.Event()

    def wake(self) -> None:
        """Something changed here: look now rather than at the next poll."""
        self.relay.wake()
        if self.worker is not None:
            self.worker.wake()

    def stop(self) -> None:
        self._stopped.set()
        self.relay.stop()
        self.webhooks.stop()
        if self.worker is not None:
            self.worker.stop()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        loops = [self.relay.run(), self.webhooks.run()]
        if self.worker is not None:
            loops.append(self.worker.run())
        tasks = [asyncio.create_task(loop) for loop in loops]
        try:
            yield
        finally:
            self.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.feed.close()
            await self.broker.close()

    async def run_until_stopped(self) -> None:
        """Run the loops until `stop()` (the worker process calls it on SIGTERM)."""
        async with self.running():
            await self._stopped.wait()
