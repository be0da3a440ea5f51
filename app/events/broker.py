"""Brokers are doorbells: they tell every process "events up to sequence N are published", in
process by default, through Redis pub/sub across processes.

They carry no events. The outbox table is the source of truth: a process that hears the bell
reads what is new from the table (app/events/feed.py), and one that misses it (no Redis, a
dropped connection, another database's bell on a shared Redis) finds the same rows at its next
poll. A ring is only ever a hint to look now.
"""

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable
from typing import Protocol

from app.bounded_redis import BoundedCalls, RedisUnavailable, bounded_client

log = logging.getLogger(__name__)
REDIS_CHANNEL = "carbon-gateway:outbox"
RECONNECT_SECONDS = 1.0

# Called with the newest published sequence, or None when it is unknown (look anyway).
Listener = Callable[[int | None], None]


class Broker(Protocol):
    async def ring(self, sequence: int) -> None:
        """Events up to `sequence` are committed with their sequence: tell every listener."""
        ...

    def listen(self, listener: Listener) -> None:
        """Call `listener` on every ring, from any process this broker reaches."""
        ...

    # False when rings stay inside this process (listeners then rely on their poll).
    reaches_other_processes: bool

    async def close(self) -> None: ...


class MemoryBroker:
    """Rings inside one process. Another process (a separate worker) is not heard; its events
    still arrive, at the listeners' next outbox poll."""

    reaches_other_processes = False

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    async def ring(self, sequence: int) -> None:
        self.notify(sequence)

    def notify(self, sequence: int | None) -> None:
        for listener in self._listeners:
            listener(sequence)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def close(self) -> None:
        self._listeners.clear()


class RedisBroker:
    """Redis pub/sub: one subscription per process, started by the first listener."""

    reaches_other_processes = True

    def __init__(
        self,
        url: str,
        channel: str = REDIS_CHANNEL,
        *,
        timeout_seconds: float = 0.1,
        pause_seconds: float = 5.0,
    ) -> None:
        import redis.asyncio as redis

        # Rings are bounded (a hung Redis must not hold up the relay, which rings after each
        # batch it publishes); the subscription is not (it waits for rings by design), and
        # while it hears nothing the listeners' poll finds the events.
        self._publisher = bounded_client(url, timeout_seconds)
        self._calls = BoundedCalls(
            "events doorbell", timeout_seconds=timeout_seconds, pause_seconds=pause_seconds
        )
        self._redis = redis.from_url(url)
        self._channel = channel
        self._local = MemoryBroker()
        self._task: asyncio.Task[None] | None = None

    async def ring(self, sequence: int) -> None:
        # Nothing is lost when it fails (logged once per pause): listeners of other
        # processes find the events at their next poll.
        with contextlib.suppress(RedisUnavailable):
            await self._calls.run(
                "publish", lambda: self._publisher.publish(self._channel, str(sequence))
            )
        self._local.notify(sequence)  # this process's listeners need no round trip

    def listen(self, listener: Listener) -> None:
        self._local.listen(listener)
        if self._task is None:
            # Not in the context of the request that happened to listen first: its logs
            # would carry that request's id.
            self._task = asyncio.create_task(self._subscribe(), context=contextvars.Context())

    async def _subscribe(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._local.notify(None)  # rings before this point were not heard
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._local.notify(_sequence_of(message.get("data")))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("Redis doorbell subscription failed; reconnecting", exc_info=True)
                self._local.notify(None)
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._local.close()
        await self._publisher.aclose()
        await self._redis.aclose()


def _sequence_of(data: object) -> int | None:
    """A ring's sequence; anything else on the channel (an older format) still means look."""
    try:
        return int(data)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def create_broker(
    redis_url: str | None, *, timeout_seconds: float = 0.1, pause_seconds: float = 5.0
) -> Broker:
    if redis_url:
        return RedisBroker(redis_url, timeout_seconds=timeout_seconds, pause_seconds=pause_seconds)
    return MemoryBroker()
