"""The per-process event feed: exactly once, in order, with replay, overflow, polling and
direct writes."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

from app.accounts.models import Account, Mode
from app.accounts.service import Principal
from app.db import Database
from app.events.broker import MemoryBroker
from app.events.feed import Delivery, EventFeed, Subscriber
from app.events.relay import relay_pending
from app.offsets import service as offsets
from app.offsets.models import OffsetOrder
from tests.conftest import make_account
from tests.offsets_fixtures import place_one_tonne, principal_for, stock_of_tonnes

TIMEOUT = 10


async def _place(
    db: Database, count: int, *, account: Account, mode: Mode = Mode.TEST
) -> list[uuid.UUID]:
    admin = principal_for(account, mode)
    return [await place_one_tonne(db, admin) for _ in range(count)]


async def _stocked_account(db: Database) -> tuple[Account, Principal]:
    """An account with 100 t of stock, and its admin principal in test mode."""
    account = await make_account(db)
    admin = principal_for(account)
    await stock_of_tonnes(db, admin, [100])
    return account, admin


async def _take(subscriber: Subscriber[OffsetOrder], count: int) -> list[int]:
    seen: list[int] = []
    deliveries: AsyncIterator[Delivery[OffsetOrder]] = subscriber.deliveries()
    async with asyncio.timeout(TIMEOUT):
        while len(seen) < count:
            seen.append((await anext(deliveries)).sequence)
    return seen


async def test_after_sequence_replays_exactly_what_followed_then_continues_live(
    db: Database,
) -> None:
    account, admin = await _stocked_account(db)
    broker = MemoryBroker()
    feed = EventFeed(db, broker, offsets.orders_of_changes)
    await _place(db, 6, account=account)
    await relay_pending(db, broker)  # sequences 1..6
    try:
        async with feed.subscribe(admin, None, after=2) as subscriber:
            await _place(db, 3, account=account)
            await relay_pending(db, broker)  # 7..9, live
            assert await _take(subscriber, 7) == [3, 4, 5, 6, 7, 8, 9]
    finally:
        await feed.close()


async def test_a_slow_subscriber_catches_up_from_the_outbox_without_holding_up_others(
    db: Database,
) -> None:
    account, admin = await _stocked_account(db)
    broker = MemoryBroker()
    feed = EventFeed(db, broker, offsets.orders_of_changes, queue_size=3)
    try:
        async with (
            feed.subscribe(admin, None, after=None) as fast,
            feed.subscribe(admin, None, after=None) as slow,
        ):
            fast_seen = asyncio.create_task(_take(fast, 20))
            for _ in range(4):
                await _place(db, 5, account=account)
                await relay_pending(db, broker)
                await asyncio.sleep(0.05)  # the feed hands out each batch; `slow` reads nothing
            assert await fast_seen == list(range(1, 21))
            assert slow.behind  # its queue filled up, so it is no longer queued for
            assert await _take(slow, 20) == list(range(1, 21))
            assert slow.catch_ups == 1
    finally:
        await feed.close()


async def test_events_published_by_another_process_arrive_by_polling_the_outbox(
    db: Database,
) -> None:
    account, admin = await _stocked_account(db)
    feed = EventFeed(db, MemoryBroker(), offsets.orders_of_changes, poll_seconds=0.05)
    other_process = MemoryBroker()  # e.g. a separate worker without Redis: its ring is unheard
    try:
        async with feed.subscribe(admin, None, after=None) as subscriber:
            await _place(db, 3, account=account)
            await relay_pending(db, other_process)
            assert await _take(subscriber, 3) == [1, 2, 3]
    finally:
        await feed.close()


async def test_subscribers_see_only_their_scope_and_their_order(db: Database) -> None:
    account = await make_account(db)
    other = await make_account(db, slug="other", name="Other")
    test, live = principal_for(account), principal_for(account, Mode.LIVE)
    for principal in (test, live, principal_for(other)):
        await stock_of_tonnes(db, principal, [10])
    broker = MemoryBroker()
    feed = EventFeed(db, broker, offsets.orders_of_changes)
    try:
        async with (
            feed.subscribe(live, None, after=None) as live_subscriber,
            feed.subscribe(test, None, after=None) as test_subscriber,
        ):
            await _place(db, 1, account=other)
            [test_order, watched] = await _place(db, 2, account=account)
            [live_order] = await _place(db, 1, account=account, mode=Mode.LIVE)
            await relay_pending(db, broker)
            async with feed.subscribe(test, watched, after=0) as one_order:
                live_delivery = await anext(live_subscriber.deliveries())
                test_deliveries = test_subscriber.deliveries()
                firsts = [(await anext(test_deliveries)).change.order_id for _ in range(2)]
                watched_delivery = await anext(one_order.deliveries())
    finally:
        await feed.close()
    assert live_delivery.change.order_id == live_order
    assert live_delivery.order.id == live_order
    assert firsts == [test_order, watched]
    assert watched_delivery.change.order_id == watched


class RecordingSink:
    """A client the feed writes to directly: renders an event as its sequence, counts the
    renderings, and has room for `room` frames (then refuses, as a full socket does)."""

    def __init__(self, group: str, renderings: list[int], room: int = 1_000) -> None:
        self.group = group
        self.renderings = renderings
        self.room = room
        self.frames: list[int] = []

    async def render(self, delivery: Delivery[OffsetOrder]) -> bytes:
        self.renderings.append(delivery.sequence)
        return str(delivery.sequence).encode()

    @property
    def socket(self) -> "RecordingSink":
        return self  # a socket of its own

    def message(self, rendered: bytes) -> bytes:
        return rendered

    def send_texts_now(self, messages: Sequence[bytes]) -> bool:
        if len(self.frames) + len(messages) > self.room:
            return False
        self.frames.extend(int(message) for message in messages)
        return True


async def _deliver_through(
    subscriber: Subscriber[OffsetOrder], sink: RecordingSink, received: list[int]
) -> None:
    """A subscription's task: the first delivery it handles itself, then it hands the feed
    its sink, as the GraphQL layer does once a first frame went out."""
    async for delivery in subscriber.deliveries():
        received.append(delivery.sequence)
        subscriber.sink = sink


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def test_caught_up_subscribers_are_written_directly_one_rendering_per_group(
    db: Database,
) -> None:
    account, admin = await _stocked_account(db)
    broker = MemoryBroker()
    feed = EventFeed(db, broker, offsets.orders_of_changes)
    renderings: list[int] = []
    sinks = [RecordingSink(group, renderings) for group in ("a", "a", "a", "b")]
    received: list[list[int]] = [[] for _ in sinks]
    try:
        async with contextlib.AsyncExitStack() as stack:
            subscribers = [
                await stack.enter_async_context(feed.subscribe(admin, None, after=None))
                for _ in sinks
            ]
            tasks = [
                asyncio.create_task(_deliver_through(subscriber, sink, seen))
                for subscriber, sink, seen in zip(subscribers, sinks, received, strict=True)
            ]
            await _place(db, 1, account=account)
            await relay_pending(db, broker)  # 1: through each subscriber's task
            await _until(lambda: all(subscriber.direct for subscriber in subscribers))
            await _place(db, 5, account=account)
            await relay_pending(db, broker)  # 2..6: written by the feed
            await _until(lambda: all(len(sink.frames) == 5 for sink in sinks))
            for task in tasks:
                task.cancel()
    finally:
        await feed.close()
    assert received == [[1]] * 4
    assert [sink.frames for sink in sinks] == [[2, 3, 4, 5, 6]] * 4
    assert sorted(renderings) == sorted([2, 3, 4, 5, 6] * 2)  # once per event for each group


class SharedSocket:
    """One client connection under several sinks: records each write's messages."""

    def __init__(self) -> None:
        self.writes: list[list[bytes]] = []

    def send_texts_now(self, messages: Sequence[bytes]) -> bool:
        self.writes.append(list(messages))
        return True


class SinkOnSocket(RecordingSink):
    """A subscription's sink on a shared socket: its message says which sink it is."""

    def __init__(self, name: str, socket: SharedSocket) -> None:
        super().__init__("a", [])
        self.name = name
        self._socket = socket

    @property
    def socket(self) -> SharedSocket:  # type: ignore[override]
        return self._socket

    def message(self, rendered: bytes) -> bytes:
        return self.name.encode() + b":" + rendered


async def test_the_subscriptions_of_one_socket_get_each_event_in_one_write(db: Database) -> None:
    account, admin = await _stocked_account(db)
    broker = MemoryBroker()
    feed = EventFeed(db, broker, offsets.orders_of_changes)
    socket = SharedSocket()
    sinks = [SinkOnSocket(name, socket) for name in ("x", "y", "z")]
    try:
        async with contextlib.AsyncExitStack() as stack:
            subscribers = [
                await stack.enter_async_context(
                    feed.subscribe(admin, None, after=None, connection="one socket")
                )
                for _ in sinks
            ]
            tasks = [
                asyncio.create_task(_deliver_through(subscriber, sink, []))
                for subscriber, sink in zip(subscribers, sinks, strict=True)
            ]
            await _place(db, 1, account=account)
            await relay_pending(db, broker)  # 1: through each subscriber's task
            await _until(lambda: all(subscriber.direct for subscriber in subscribers))
            await _place(db, 2, account=account)
            await relay_pending(db, broker)  # 2, 3: written by the feed
            await _until(lambda: len(socket.writes) == 2)
            for task in tasks:
                task.cancel()
    finally:
        await feed.close()
    assert socket.writes == [[b"x:2", b"y:2", b"z:2"], [b"x:3", b"y:3", b"z:3"]]


async def test_a_directly_written_subscriber_without_room_catches_up_then_is_written_again(
    db: Database,
) -> None:
    account, admin = await _stocked_account(db)
    broker = MemoryBroker()
    feed = EventFeed(db, broker, offsets.orders_of_changes)
    full = RecordingSink("a", [], room=2)
    roomy = RecordingSink("a", [])
    received: list[int] = []
    other_received: list[int] = []
    try:
        async with (
            feed.subscribe(admin, None, after=None) as slow,
            feed.subscribe(admin, None, after=None) as fast,
        ):
            slow_task = asyncio.create_task(_deliver_through(slow, full, received))
            fast_task = asyncio.create_task(_deliver_through(fast, roomy, other_received))
            await _place(db, 1, account=account)
            await relay_pending(db, broker)  # 1 through the tasks
            await _until(lambda: slow.direct and fast.direct)
            await _place(db, 4, account=account)
            await relay_pending(db, broker)  # 2, 3 written; 4 refused: 4, 5 from the outbox
            await _until(lambda: received == [1, 4, 5] and slow.direct)
            full.room = 10
            await _place(db, 2, account=account)
            await relay_pending(db, broker)  # 6, 7 written directly again
            await _until(lambda: len(full.frames) == 4 and len(roomy.frames) == 6)
            slow_task.cancel()
            fast_task.cancel()
    finally:
        await feed.close()
    assert full.frames == [2, 3, 6, 7]
    assert slow.catch_ups == 1
    assert roomy.frames == [2, 3, 4, 5, 6, 7]  # the slow one held up nobody
    assert other_received == [1]


class SharedRenderingSink(RecordingSink):
    """Renders by awaiting a result shared with other subscribers' tasks, as the GraphQL
    layer's grouped execution does (app/graphql/events.py): while `shared` is set, rendering
    waits for it."""

    shared: "asyncio.Future[None] | None" = None
    waiting = False

    async def render(self, delivery: Delivery[OffsetOrder]) -> bytes:
        if self.shared is not None:
            self.waiting = True
            await self.shared
        return await super().render(delivery)


async def test_a_shared_rendering_cancelled_by_another_subscriber_stops_no_direct_writes(
    db: Database,
) -> None:
    """A shared result is cancelled when one task awaiting it is (a client that completes or
    disconnects mid-event). The writer must not die of that CancelledError: every other
    directly written subscriber of the process would silently get nothing more."""
    account, admin = await _stocked_account(db)
    broker = MemoryBroker()
    feed = EventFeed(db, broker, offsets.orders_of_changes)
    stalled = SharedRenderingSink("a", [])
    other = RecordingSink("b", [])
    received: list[int] = []
    try:
        async with (
            feed.subscribe(admin, None, after=None) as first,
            feed.subscribe(admin, None, after=None) as second,
        ):
            tasks = [
                asyncio.create_task(_deliver_through(first, stalled, received)),
                asyncio.create_task(_deliver_through(second, other, [])),
            ]
            await _place(db, 1, account=account)
            await relay_pending(db, broker)  # 1 through the tasks
            await _until(lambda: first.direct and second.direct)
            stalled.shared = asyncio.get_running_loop().create_future()
            await _place(db, 1, account=account)
            await relay_pending(db, broker)  # 2: the writer waits on the shared result
            await _until(lambda: stalled.waiting)
            stalled.shared.cancel()  # its other awaiter went away
            stalled.shared = None
            await _place(db, 2, account=account)
            await relay_pending(db, broker)  # 3, 4
            await _until(lambda: len(other.frames) == 3)
            await _until(lambda: sorted([*received, *stalled.frames]) == [1, 2, 3, 4])
            for task in tasks:
                task.cancel()
    finally:
        await feed.close()
    assert other.frames == [2, 3, 4]
