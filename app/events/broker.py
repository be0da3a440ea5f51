"""Brokers fan published events out to subscribers: in-process by default, Redis across processes.

Delivery is at least once and may skip under overload: a subscriber that falls behind is told
(`lagged`) and re-reads what it missed from the outbox table, which is the source of truth.
"""

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app.accounts.models import Mode
from app.events.models import Event

log = logging.getLogger(__name__)
QUEUE_SIZE = 1_000
REDIS_CHANNEL = "carbon-gateway:events"


@dataclass(frozen=True)
class PublishedEvent:
    sequence: int
    type: str
    account_id: uuid.UUID
    mode: Mode
    subaccount_id: uuid.UUID | None
    order_id: uuid.UUID | None
    previous_state: str | None
    state: str | None
    occurred_at: datetime

    @classmethod
    def from_row(cls, event: Event) -> "PublishedEvent":
        assert event.sequence is not None
        return cls(
            sequence=event.sequence,
            type=event.type,
            account_id=event.account_id,
            mode=event.mode,
            subaccount_id=event.subaccount_id,
            order_id=event.order_id,
            previous_state=event.previous_state,
            state=event.state,
            occurred_at=event.occurred_at,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "sequence": self.sequence,
                "type": self.type,
                "account_id": str(self.account_id),
                "mode": self.mode.value,
                "subaccount_id": str(self.subaccount_id) if self.subaccount_id else None,
                "order_id": str(self.order_id) if self.order_id else None,
                "previous_state": self.previous_state,
                "state": self.state,
                "occurred_at": self.occurred_at.isoformat(),
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> "PublishedEvent":
        data: dict[str, Any] = json.loads(raw)
        return cls(
            sequence=int(data["sequence"]),
            type=data["type"],
            account_id=uuid.UUID(data["account_id"]),
            mode=Mode(data["mode"]),
            subaccount_id=uuid.UUID(data["subaccount_id"]) if data["subaccount_id"] else None,
            order_id=uuid.UUID(data["order_id"]) if data["order_id"] else None,
            previous_state=data["previous_state"],
            state=data["state"],
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
        )


class Subscription:
    """What one subscriber receives; `lagged` is set when events were dropped for it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[PublishedEvent] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.lagged = False

    def offer(self, event: PublishedEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True

    async def next(self) -> PublishedEvent:
        return await self.queue.get()


class Broker(Protocol):
    async def publish(self, event: PublishedEvent) -> None: ...

    def subscribe(self) -> contextlib.AbstractAsyncContextManager[Subscription]: ...

    async def close(self) -> None: ...


class MemoryBroker:
    """Fan-out inside one process: enough for one server process (the embedded default)."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()

    async def publish(self, event: PublishedEvent) -> None:
        for subscription in list(self._subscriptions):
            subscription.offer(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        subscription = Subscription()
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    def mark_all_lagged(self) -> None:
        for subscription in self._subscriptions:
            subscription.lagged = True

    async def close(self) -> None:
        self._subscriptions.clear()


class RedisBroker:
    """Redis pub/sub, so that subscribers on every server process see every event. One Redis
    subscription per process feeds the local subscribers, whatever their number."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._local = MemoryBroker()
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def publish(self, event: PublishedEvent) -> None:
        await self._redis.publish(REDIS_CHANNEL, event.to_json())

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        if self._listener is None or self._listener.done():
            self._ready.clear()
            self._listener = asyncio.create_task(self._listen())
        await self._ready.wait()
        async with self._local.subscribe() as subscription:
            yield subscription

    async def _listen(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(REDIS_CHANNEL)
                self._ready.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self._local.publish(PublishedEvent.from_json(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                # Subscribers re-read the outbox when told they lagged; mark them all.
                log.exception("redis event subscription failed; reconnecting")
                self._local.mark_all_lagged()
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._redis.aclose()


def create_broker(redis_url: str | None) -> Broker:
    return RedisBroker(redis_url) if redis_url else MemoryBroker()
