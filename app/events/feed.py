"""A process's live feed: reads newly published events from the outbox once, and hands them to
every local subscriber that may see them, each through its own bounded queue.

How the guarantee follows (see app/events/relay.py for why sequences are gap-free):
- The feed reads `sequence > position` in order whenever the broker rings or its poll comes
  round, so it sees every published event once, in order, whether or not a ring reached it.
- Each event is read, and its order loaded, once per process, whatever the number of
  subscribers; a subscriber costs a filter and a queue append.
- A subscriber starts after a known sequence: the feed's position when it subscribed, or the
  client's `afterSequence`. What lies between that and the feed's position it reads from the
  outbox itself ("catching up"), then it takes the live queue, dropping anything at or below
  the last sequence it delivered. No gap, no repeat.
- Overflow: a subscriber whose queue is full (a slow client) stops being queued for; once it
  has drained its queue it catches up from the outbox and rejoins. It never blocks the feed or
  other subscribers, and never loses an event.
- Direct writes: a subscriber that has caught up and has a `DirectSink` (its socket, with a
  way to render an event) leaves its task asleep: the feed's writer renders each event once per
  group of sinks that would render it alike and writes every sink's frame itself, in sequence
  order. A sink that has no room (a slow socket) puts its subscriber behind, as a full queue
  does; the subscriber's task catches up from the outbox and hands itself back to the writer.
- A rewound outbox (the database restored to an earlier point, a failover to a replica that
  was behind, while the process runs): its newest sequence is then below the feed's position,
  and the relay numbers new events with sequences already delivered. The feed looks (at most
  every REWIND_CHECK_SECONDS, after a read that found nothing new), goes back to the newest
  sequence there is, and ends every subscription with EVENT_HISTORY_REWOUND rather than drop
  the renumbered events in silence: what a client saw belongs to a history the database no
  longer has.
- Fairness: a burst makes every subscriber's task ready at once, and asyncio runs all ready
  tasks before it comes back to, say, an HTTP request waiting on its next step. A `Turnstile`
  lets only so many deliveries through per turn of the event loop, and the writer yields to
  the loop once it has written for `DIRECT_WRITE_SLICE_SECONDS`, so other requests keep their
  latency while fan-out still uses whatever time is left.
"""

import asyncio
import contextlib
import contextvars
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.models import Mode
from app.accounts.service import Principal, owned_by
from app.db import Database
from app.errors import DomainError, ErrorCode
from app.events.broker import Broker
from app.events.changes import OrderStateChanged
from app.events.models import Event

log = logging.getLogger(__name__)
QUEUE_SIZE = 1_000  # deliveries waiting per subscriber before it must catch up from the outbox
DELIVERIES_PER_TURN = 50  # ~5 ms of fan-out work between two steps of anything else
# How long the writer writes between two steps of anything else (about one event for 1,000
# subscribers on a core of its own). Wall-clock time, not a count of frames: when the process
# loses its core to others, a slice does less, and an HTTP request still gets its turns.
DIRECT_WRITE_SLICE_SECONDS = 0.002
READ_BATCH = 1_000
# With a broker that reaches every process, the poll only covers lost rings; with the
# in-process one it is how a separate worker's events arrive.
POLL_SECONDS_WITH_DOORBELL = 1.0
POLL_SECONDS_WITHOUT_DOORBELL = 0.2
# How often, at most, the feed asks whether the outbox went back below its position (a
# restored database): one statement, after a read that found nothing new.
REWIND_CHECK_SECONDS = 1.0

Subject = TypeVar("Subject")
# Loads the subjects (orders) of a batch of changes, keyed by order id, in one query.
LoadSubjects = Callable[
    [AsyncSession, Sequence[OrderStateChanged]], Awaitable[Mapping[uuid.UUID, Subject]]
]
Scope = tuple[uuid.UUID, Mode, uuid.UUID | None]


@dataclass(frozen=True, slots=True)
class Delivery(Generic[Subject]):
    """One event as every local subscriber receives it: the same object for all of them, so
    an edge can map it once (`memo`) rather than once per subscriber."""

    change: OrderStateChanged
    order: Subject
    memo: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def sequence(self) -> int:
        assert self.change.sequence is not None  # the feed reads only published events
        return self.change.sequence


class DirectSocket(Protocol):
    """A client connection that takes frames synchronously (app/websocket_writes.py)."""

    def send_texts_now(self, messages: Sequence[bytes]) -> bool:
        """Send each message as a text frame, all in one write; False, sending nothing, when
        the client has no room."""

    def abort(self) -> None:
        """Drop the connection at once, unsent bytes and all."""


class DirectSink(Protocol):
    """A subscriber's way straight to its client, used while it keeps up."""

    @property
    def group(self) -> Hashable:
        """Sinks of one group render an event to the same bytes: rendered once per event."""

    @property
    def socket(self) -> DirectSocket:
        """Its connection; the sinks of one connection have their messages of an event sent
        together."""

    async def render(self, delivery: Delivery[Any]) -> bytes | None:
        """The group's frame payload; None if it would have to wait (for the database): the
        writer then leaves the sink's subscriber to its own task."""

    def message(self, rendered: bytes) -> bytes:
        """This sink's message for a rendered event."""


class EventHistoryRewound(DomainError):
    def __init__(self, position: int, newest: int) -> None:
        super().__init__(
            ErrorCode.EVENT_HISTORY_REWOUND,
            f"The event history went back from sequence {position} to {newest} (the database "
            "was restored to an earlier point): sequences after it will be given to new events. "
            "Re-read the orders you follow and subscribe again without afterSequence.",
        )


class Turnstile:
    """At most `per_turn` passes per event-loop iteration; the rest wait, in order, for the
    next iterations."""

    def __init__(self, per_turn: int = DELIVERIES_PER_TURN) -> None:
        self.per_turn = per_turn
        self._passed = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._turn_scheduled = False

    async def wait(self) -> None:
        if self._passed < self.per_turn and not self._waiting:
            self._passed += 1
            self._schedule_next_turn()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        self._schedule_next_turn()
        await waiter

    def _schedule_next_turn(self) -> None:
        if not self._turn_scheduled:
            self._turn_scheduled = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._turn_scheduled = False
        self._passed = 0
        while self._waiting and self._passed < self.per_turn:
            waiter = self._waiting.popleft()
            if not waiter.done():  # a cancelled subscriber leaves a done future behind
                waiter.set_result(None)
                self._passed += 1
        if self._waiting or self._passed:
            self._schedule_next_turn()


class Subscriber(Generic[Subject]):
    """One subscription's view of the feed; iterate `deliveries()` in the subscriber's task."""

    def __init__(
        self,
        feed: "EventFeed[Subject]",
        principal: Principal,
        order_id: uuid.UUID | None,
        after: int,
        *,
        catch_up: bool,
        connection: Hashable = None,
    ) -> None:
        self.feed = feed
        self.principal = principal
        self.order_id = order_id
        self.connection = connection
        self.last = after
        self.behind = catch_up  # while set, live events are not queued (the outbox has them)
        # The end of the outbox range being replayed, while a catch-up is under way: kept here,
        # not in `deliveries()`, so that a new iteration finishes what an abandoned one began.
        self._replay_upto: int | None = None
        self.catch_ups = 0
        # Set once its subscription no longer runs through Strawberry's stack (the GraphQL
        # layer's detach): leaving `subscribe()` then keeps it registered, and its owner
        # removes it (`EventFeed.remove`) when the subscription ends.
        self.detached = False
        # Set by the consumer once it can be written to directly; `direct` while the feed's
        # writer does so (only once caught up with an empty queue).
        self.sink: DirectSink | None = None
        self.direct = False
        self.closed = False
        self.failure: Exception | None = None  # raised by `deliveries()` once set
        self._queue: deque[Delivery[Subject]] = deque()
        self._ready = asyncio.Event()

    @property
    def scope(self) -> Scope:
        return (self.principal.account_id, self.principal.mode, self.principal.subaccount_id)

    def offer(self, delivery: Delivery[Subject]) -> bool:
        """Queue the delivery for this subscriber's task; True when the feed's writer should
        write it instead."""
        if self.order_id is not None and delivery.change.order_id != self.order_id:
            return False
        if self.direct:
            return True
        if self.behind:
            return False
        if len(self._queue) >= self.feed.queue_size:
            self.behind = True
        else:
            self._queue.append(delivery)
        self._ready.set()
        return False

    def end(self, failure: Exception) -> None:
        """Its subscription can go on no longer: `deliveries()` raises `failure`."""
        self.failure = failure
        self.direct = False
        self._ready.set()

    def fall_behind(self) -> None:
        """The sink had no room: the task catches up from the outbox (after `last`)."""
        self.direct = False
        self.behind = True
        self._ready.set()

    async def deliveries(self) -> AsyncIterator[Delivery[Subject]]:
        """Its deliveries, from `last` on, until it goes direct (then it waits, and resumes if
        it falls behind). All the state is the subscriber's: an iteration closed between two
        deliveries can be followed by a new one, which goes on exactly where it stopped."""
        while True:
            if self.failure is not None:
                raise self.failure
            if self._replay_upto is not None:
                async for delivery in self.feed.replay(
                    self.principal, self.order_id, self.last, self._replay_upto
                ):
                    if self.failure is not None:
                        raise self.failure
                    if delivery.sequence > self.last:
                        await self.feed.turnstile.wait()
                        self.last = delivery.sequence
                        yield delivery
                self._replay_upto = None
                continue
            if not self._queue:
                if self.behind:
                    # Everything up to the feed's position is in the outbox; anything after
                    # it will be queued from this very moment (no await in between).
                    self.behind = False
                    self.catch_ups += 1
                    self._replay_upto = self.feed.position
                    continue
                if self.sink is not None and not self.closed:
                    # Caught up, nothing queued: from the next event on, the writer writes.
                    self.direct = True
                self._ready.clear()
                await self._ready.wait()
                continue
            await self.feed.turnstile.wait()
            if self.failure is not None:
                raise self.failure
            delivery = self._queue.popleft()
            if delivery.sequence > self.last:
                self.last = delivery.sequence
                yield delivery


class EventFeed(Generic[Subject]):
    def __init__(
        self,
        db: Database,
        broker: Broker,
        load_subjects: LoadSubjects[Subject],
        *,
        queue_size: int = QUEUE_SIZE,
        poll_seconds: float | None = None,
    ) -> None:
        self.db = db
        self.broker = broker
        self.load_subjects = load_subjects
        self.queue_size = queue_size
        self.turnstile = Turnstile()
        self.poll_seconds = poll_seconds or (
            POLL_SECONDS_WITH_DOORBELL
            if broker.reaches_other_processes
            else POLL_SECONDS_WITHOUT_DOORBELL
        )
        self.position = 0  # the last sequence handed to subscribers
        # When it last handed out or wrote events (time.monotonic()), for app/collector.py.
        self.last_active = 0.0
        # By scope, then by connection (dicts as ordered sets): the subscriptions of one
        # socket are offered an event one after another, so their frames share one write
        # (app/websocket_writes.py).
        self._subscribers: dict[Scope, dict[Hashable, dict[Subscriber[Subject], None]]] = {}
        self._rung = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Events for the writer, each with the direct subscribers it was offered to.
        self._to_write: deque[tuple[Delivery[Subject], list[Subscriber[Subject]]]] = deque()
        self._writable = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._rewind_checked = 0.0

    @contextlib.asynccontextmanager
    async def subscribe(
        self,
        principal: Principal,
        order_id: uuid.UUID | None,
        after: int | None,
        connection: Hashable = None,
    ) -> AsyncIterator[Subscriber[Subject]]:
        """A subscriber to events after `after`, or to those after now when it is None.
        Subscribers that give the same `connection` (their socket) are offered each event
        consecutively."""
        await self._start()
        subscriber = Subscriber(
            self,
            principal,
            order_id,
            self.position if after is None else after,
            catch_up=after is not None,
            connection=connection,
        )
        scoped = self._subscribers.setdefault(subscriber.scope, {})
        scoped.setdefault(connection, {})[subscriber] = None
        try:
            yield subscriber
        finally:
            if not subscriber.detached:
                self.remove(subscriber)

    def remove(self, subscriber: Subscriber[Subject]) -> None:
        """No more events for it (done by `subscribe()` on leaving, unless it was detached)."""
        subscriber.closed = True
        subscriber.direct = False
        subscriber.sink = None
        scoped = self._subscribers.get(subscriber.scope, {})
        connected = scoped.get(subscriber.connection)
        if connected is None:
            return
        connected.pop(subscriber, None)
        if not connected:
            del scoped[subscriber.connection]
        if not scoped:
            del self._subscribers[subscriber.scope]

    @property
    def subscriber_count(self) -> int:
        return sum(
            len(connected) for scoped in self._subscribers.values() for connected in scoped.values()
        )

    def _ring(self, sequence: int | None) -> None:
        if sequence is None or sequence > self.position:
            self._rung.set()

    async def _start(self) -> None:
        """Begin at the newest published event, the first time anyone subscribes."""
        async with self._starting:
            if self._task is not None:
                return
            async with self.db.session() as session:
                newest = (await session.exec(select(func.max(Event.sequence)))).one()
            self.position = newest or 0
            self.broker.listen(self._ring)
            # Fresh contexts: these serve every subscriber, not the one that started them.
            self._task = asyncio.create_task(self._run(), context=contextvars.Context())
            self._writer = asyncio.create_task(
                self._write_directly(), context=contextvars.Context()
            )

    async def _run(self) -> None:
        while True:
            self._rung.clear()
            try:
                while await self._read_new():
                    pass
                if time.monotonic() - self._rewind_checked >= REWIND_CHECK_SECONDS:
                    await self._check_rewound()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event feed read failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rung.wait(), timeout=self.poll_seconds)

    async def _read_new(self) -> int:
        """Hand the next batch of published events to subscribers; how many there were."""
        async with self.db.session() as session:
            rows = (
                await session.exec(
                    select(Event)
                    .where(col(Event.sequence) > self.position)
                    .order_by(col(Event.sequence))
                    .limit(READ_BATCH)
                )
            ).all()
            if not rows:
                return 0
            changes = [change for row in rows if (change := OrderStateChanged.from_row(row))]
            # Loaded even with no subscriber yet: one may subscribe before this batch is handed out.
            subjects = await self.load_subjects(session, changes)
        # From here to the end no await: a subscriber catching up reads `position` and must
        # find every event up to it either in the outbox or in its queue.
        for change in changes:
            subject = subjects.get(change.order_id)
            scope = (change.account_id, change.mode, change.subaccount_id)
            if subject is None or scope not in self._subscribers:
                continue
            delivery = Delivery(change, subject)
            direct = [
                subscriber
                for connected in self._subscribers[scope].values()
                for subscriber in connected
                if subscriber.offer(delivery)
            ]
            if direct:
                self._to_write.append((delivery, direct))
                self._writable.set()
        last = rows[-1].sequence
        assert last is not None
        self.position = last
        self.last_active = time.monotonic()
        return len(rows)

    async def _check_rewound(self) -> None:
        """Whether the outbox now ends below what was handed out (see `_rewind`)."""
        self._rewind_checked = time.monotonic()
        async with self.db.session() as session:
            newest = (await session.exec(select(func.max(Event.sequence)))).one() or 0
        if newest < self.position:
            self._rewind(newest)

    def _rewind(self, newest: int) -> None:
        """The outbox ends below what was handed out: start again from its newest sequence,
        and end every subscription (see the module's docstring)."""
        subscribers = [
            subscriber
            for scoped in self._subscribers.values()
            for connected in scoped.values()
            for subscriber in connected
        ]
        log.error(
            "the outbox went back from sequence %d to %d (database restored?): ending %d "
            "subscriptions",
            self.position,
            newest,
            len(subscribers),
        )
        position, self.position = self.position, newest
        self._to_write.clear()
        for subscriber in subscribers:
            self.remove(subscriber)
            subscriber.end(EventHistoryRewound(position, newest))  # raised in its own task

    async def _write_directly(self) -> None:
        """The writer: each event rendered once per group of sinks, then the messages of every
        socket's direct subscribers sent in one write per socket, in the order the events
        were read; it yields to the loop after writing for DIRECT_WRITE_SLICE_SECONDS."""
        writer = asyncio.current_task()
        assert writer is not None
        while True:
            await self._writable.wait()
            self._writable.clear()
            # In a call of its own: its locals (the last event's subscribers, sinks, socket) go
            # when it returns, not when the next event comes, which would keep the last
            # socket written to alive after it closed.
            await self._write_pending(writer)

    async def _write_pending(self, writer: "asyncio.Task[None]") -> None:
        """Write every queued event (see `_write_directly`)."""
        slice_started = time.perf_counter()
        while self._to_write:
            delivery, subscribers = self._to_write.popleft()
            sequence = delivery.sequence
            rendered: dict[Hashable, bytes | None] = {}
            # The messages for one socket, gathered while consecutive subscribers share it
            # (the feed keeps a connection's subscribers together); sent before any await,
            # so that none of them can complete between its message and the write.
            socket: DirectSocket | None = None
            messages: list[bytes] = []
            senders: list[Subscriber[Subject]] = []
            for subscriber in subscribers:
                sink = subscriber.sink
                # It may have fallen behind, caught up past this event, or left meanwhile.
                if not subscriber.direct or sink is None or sequence <= subscriber.last:
                    continue
                if sink.socket is not socket:
                    _send(socket, messages, senders, sequence)
                    socket, messages, senders = sink.socket, [], []
                    if time.perf_counter() - slice_started >= DIRECT_WRITE_SLICE_SECONDS:
                        await asyncio.sleep(0)
                        slice_started = time.perf_counter()
                        if not subscriber.direct or sequence <= subscriber.last:
                            continue
                try:
                    if sink.group not in rendered:
                        _send(socket, messages, senders, sequence)
                        messages, senders = [], []
                        rendered[sink.group] = await sink.render(delivery)
                        # The rendering awaited: it may have fallen behind (and even caught up).
                        if not subscriber.direct or sequence <= subscriber.last:
                            continue
                    frame = rendered[sink.group]
                    if frame is None:
                        # Its group's renderings wait for the database: waited for here,
                        # they would delay every event behind them. Its task delivers.
                        subscriber.sink = None
                        subscriber.fall_behind()
                        continue
                    message = sink.message(frame)
                except asyncio.CancelledError:
                    if writer.cancelling():
                        raise  # the feed is closing
                    # What the rendering awaited was cancelled, not the writer (a result
                    # shared with a subscription that ended): the writer serves everyone.
                    log.warning("rendering an event was cancelled; its subscriber catches up")
                    subscriber.fall_behind()
                    continue
                except Exception:
                    log.exception("writing an event failed; its subscriber catches up")
                    subscriber.sink = None  # its task delivers from now on
                    subscriber.fall_behind()
                    continue
                messages.append(message)
                senders.append(subscriber)
            _send(socket, messages, senders, sequence)
        self.last_active = time.monotonic()

    async def replay(
        self, principal: Principal, order_id: uuid.UUID | None, after: int, upto: int
    ) -> AsyncIterator[Delivery[Subject]]:
        """The principal's published events in (after, upto], read from the outbox."""
        while after < upto:
            statement = (
                select(Event)
                .where(
                    *owned_by(principal, Event),
                    col(Event.sequence) > after,
                    col(Event.sequence) <= upto,
                    col(Event.order_id).is_not(None),
                )
                .order_by(col(Event.sequence))
                .limit(READ_BATCH)
            )
            if order_id is not None:
                statement = statement.where(Event.order_id == order_id)
            async with self.db.session() as session:
                rows = (await session.exec(statement)).all()
                changes = [c for row in rows if (c := OrderStateChanged.from_row(row))]
                subjects = await self.load_subjects(session, changes)
            if not rows:
                return
            for change in changes:
                subject = subjects.get(change.order_id)
                if subject is not None:
                    yield Delivery(change, subject)
            last = rows[-1].sequence
            assert last is not None
            after = last

    async def close(self) -> None:
        for task in (self._task, self._writer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._subscribers.clear()


def _send(
    socket: DirectSocket | None,
    messages: list[bytes],
    senders: "list[Subscriber[Any]]",
    sequence: int,
) -> None:
    """Send one socket's messages of the event `sequence`. A socket without room, or one
    whose write fails, puts all of them behind: they catch up."""
    if socket is None or not messages:
        return
    try:
        sent = socket.send_texts_now(messages)
    except Exception:
        log.exception("writing an event failed; its subscribers catch up")
        for subscriber in senders:
            subscriber.sink = None  # their tasks deliver from now on
            subscriber.fall_behind()
        return
    for subscriber in senders:
        if sent:
            subscriber.last = sequence
        else:
            subscriber.fall_behind()
