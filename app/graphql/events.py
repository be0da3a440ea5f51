"""Live events in the graph: the `orderStatusChanged` subscription, a thin skin over the
process's event feed (app/events/feed.py), which holds the delivery guarantee.

Fan-out cost: an event is mapped to `OrderStatusChange` once per process, and executed once per
group of subscribers that sent the same document and variables in the same scope
(`SharedEventExecution`). A subscription's first event goes out the ordinary way, through
Strawberry's layers; from then on, while it keeps up and its result needs no wait (no
database read per event), the feed writes its frames itself (`LiveFrames`): the group's
result is encoded once, and each frame is that shared payload between the subscription's own
prefix (its id and message type) and suffix (its `extensions`, fixed when it started: the cost
charged then).
"""

import asyncio
import contextvars
import dataclasses
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Mapping
from datetime import datetime
from typing import Any

import orjson
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.errors import InvalidInput, NotFound
from app.events import service as events
from app.events.feed import Delivery, DirectSocket, Subscriber
from app.graphql.context import Info
from app.graphql.extensions import classify, debug_enabled
from app.graphql.offsets import Order, OrderState, order_state
from app.graphql.relay import parse_global_id
from app.offsets import models as order_models
from app.offsets.models import OffsetOrder

MEMO_KEY = "graphql.OrderStatusChange"


@strawberry.type
class OrderStatusChange:
    sequence: int = strawberry.field(
        description="Strictly increasing across your events, without repeats; pass the last "
        "one you saw as `afterSequence` to resume exactly where you left off."
    )
    order: Order = strawberry.field(description="The order as it is now.")
    previous_state: OrderState | None  # type: ignore[valid-type]
    state: OrderState  # type: ignore[valid-type]
    occurred_at: datetime
    # Execution results of this event, by what was asked and who asked (see below).
    executions: strawberry.Private[dict[Hashable, Any]] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, delivery: Delivery[OffsetOrder]) -> "OrderStatusChange":
        """The one instance for this delivery in this process."""
        view = delivery.memo.get(MEMO_KEY)
        if view is None:
            view = delivery.memo[MEMO_KEY] = cls.from_delivery(delivery)
        assert isinstance(view, cls)
        return view

    @classmethod
    def from_delivery(cls, delivery: Delivery[OffsetOrder]) -> "OrderStatusChange":
        change = delivery.change
        return cls(
            sequence=delivery.sequence,
            order=Order.from_row(delivery.order),
            previous_state=order_state(change.previous_state),
            state=order_models.OrderState(change.state),
            occurred_at=change.occurred_at,
        )


@strawberry.type
class EventSubscriptions:
    @strawberry.subscription(
        description="Order state changes of your account, mode and subaccount, each exactly "
        "once and in strictly increasing `sequence`. With `afterSequence`, first replays every "
        "change after it, then continues live with no gap and no repeat."
    )
    async def order_status_changed(
        self,
        info: Info,
        order_id: strawberry.ID | None = None,
        after_sequence: int | None = None,
    ) -> AsyncGenerator[OrderStatusChange, None]:
        principal = info.context.require_principal()
        background = info.context.background
        if background is None:
            raise RuntimeError("subscriptions need the app's background services")
        wanted = parse_global_id(order_id, "Order", "orderId") if order_id else None
        # Refused now rather than a subscription that silently never yields: an order this key
        # may not see, or a resume point beyond every event (another environment's sequence).
        if wanted is not None and await info.context.loaders.order_by_id.load(wanted) is None:
            raise NotFound("No order with this id for this key.", "orderId")
        if after_sequence is not None:
            if after_sequence < 0:
                raise InvalidInput(
                    "afterSequence must be 0 (every event) or the sequence of an event.",
                    "afterSequence",
                )
            async with info.context.db.session() as session:
                latest = await events.latest_sequence(session)
            if after_sequence > latest:
                raise InvalidInput(
                    f"afterSequence {after_sequence} is beyond the newest event ({latest}).",
                    "afterSequence",
                )
        # The context is the socket's: its subscriptions are offered each event together.
        connection = id(info.context)
        async with background.feed.subscribe(
            principal, wanted, after_sequence, connection
        ) as subscriber:
            if (frames := LIVE_FRAMES.get()) is not None:
                # Once its first event is out, the socket's handler detaches it (see
                # `continue_detached`): this generator is then closed, not the subscription.
                frames.subscriber = subscriber
            async for delivery in subscriber.deliveries():
                yield OrderStatusChange.of(delivery)


class SharedEventExecution(StrawberryGraphQLCoreExecutionContext):
    """Executes an `OrderStatusChange` event once for every subscriber of this process that
    sent the same operation with the same variables and acts in the same scope, and hands all
    of them that one result. Everything a result depends on is in the key: the document text,
    operation name, variables, the principal's account, mode, subaccount and role, and the
    public base URL (certificate links)."""

    def build_per_event_executor(self, payload: Any) -> Any:
        # A subscriber whose group already has this event's result skips even the copy of
        # the executor that graphql-core makes per event.
        if isinstance(payload, OrderStatusChange):
            frames = LIVE_FRAMES.get()
            if frames is not None and frames.executor is None:
                frames.attach(self)
            key = self._sharing_key()
            if key is not None and (shared := payload.executions.get(key)) is not None:
                return _AlreadyExecuted(_own_wait(shared))
        return super().build_per_event_executor(payload)

    def execute_operation(self, serially: bool | None = None) -> Any:
        root = self.root_value
        key = self._sharing_key() if isinstance(root, OrderStatusChange) else None
        if key is None:
            return super().execute_operation(serially)
        assert isinstance(root, OrderStatusChange)
        shared = root.executions.get(key)
        if shared is None:
            # The socket's context outlives each event: nested fields must not come from
            # loaders that cached an earlier state of the order.
            self.context_value.loaders.forget()
            shared = super().execute_operation(serially)
            if self.is_awaitable(shared):
                # A task, not a coroutine: every subscriber of the group awaits the same run.
                shared = asyncio.ensure_future(shared)
            root.executions[key] = shared
        return _own_wait(shared)

    def _sharing_key(self) -> Hashable | None:
        """Computed once per subscription; per-event copies of the executor inherit it."""
        if not hasattr(self, "_shared_key"):
            self._shared_key = self._compute_sharing_key()
        return self._shared_key

    def _compute_sharing_key(self) -> Hashable | None:
        context = self.context_value
        principal = getattr(context, "principal", None)
        location = self.operation.loc
        if principal is None or location is None:
            return None
        return (
            location.source.body,
            self.operation.name.value if self.operation.name else None,
            orjson.dumps(self.variable_values, option=orjson.OPT_SORT_KEYS, default=str),
            principal.account_id,
            principal.mode,
            principal.subaccount_id,
            principal.is_admin,
            context.public_url(""),
        )


def _own_wait(shared: Any) -> Any:
    """One subscriber's wait for a result its group shares: cancelling a task that awaits a
    Task cancels the Task, so each waits through a shield of its own (a client that completes
    mid-event must not cancel the event for its group, nor for the feed's writer)."""
    return asyncio.shield(shared) if isinstance(shared, asyncio.Future) else shared


class _AlreadyExecuted:
    """Stands in for graphql-core's per-event executor when the result already exists."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> Any:
        return self.result


# The frames of the subscription running in this task (set by app/graphql/websocket.py).
LIVE_FRAMES: contextvars.ContextVar["LiveFrames | None"] = contextvars.ContextVar(
    "live_frames", default=None
)


class LiveFrames:
    """One subscription's socket as the feed's direct sink (app/events/feed.py `DirectSink`):
    ready once its first event went out the ordinary way, which gave its executor (to render
    events for its group) and its payload's own `extensions`. Its socket's handler `stop()`s
    it the moment the operation ends (complete, stop, the socket closing), so no check runs
    per frame."""

    def __init__(self, operation_id: str, message_type: str, socket: DirectSocket) -> None:
        self._prefix = (
            b"".join(
                (b'{"id":', orjson.dumps(operation_id), b',"type":', orjson.dumps(message_type))
            )
            + b',"payload":'
        )
        self.socket = socket
        self._suffix: bytes | None = None
        self.executor: SharedEventExecution | None = None
        self.group: Hashable | None = None
        self.subscriber: Subscriber[OffsetOrder] | None = None  # set by the resolver

    def attach(self, executor: "SharedEventExecution") -> None:
        """The subscription's own executor (from its first event), to render later ones."""
        self.executor = executor
        self.group = executor._sharing_key()

    def release(self) -> None:
        """Their subscription is over: drop what leads back to it (see `end_live_frames`)."""
        self.executor = None
        self.subscriber = None

    def detach(self) -> None:
        """Its subscription goes on in a new task (`continue_detached`): leaving the resolver,
        which the old task closes, leaves it registered."""
        assert self.subscriber is not None
        self.subscriber.detached = True

    def stop(self) -> None:
        """Its operation is over: from this moment the feed writes nothing more for it (its
        task, cancelled, ends a loop turn or more later)."""
        if self.subscriber is not None:
            self.subscriber.feed.remove(self.subscriber)

    def note_payload(self, payload: Mapping[str, Any]) -> None:
        """The payload of a frame sent the ordinary way: the first one gives the suffix."""
        if self._suffix is None:
            extensions = payload.get("extensions")
            own = b',"extensions":' + orjson.dumps(extensions) if extensions else b""
            self._suffix = own + b"}}"

    @property
    def ready(self) -> bool:
        return self._suffix is not None and self.group is not None

    @property
    def detachable(self) -> bool:
        """Ready, and its subscription is one of the feed's: it can do without its stack."""
        return self.ready and self.subscriber is not None

    async def render(self, delivery: Delivery[OffsetOrder], *, wait: bool = False) -> bytes | None:
        """The payload shared by the group, without its closing brace. Unless `wait`, None
        when the event's result is not there yet (the document reads the database per event,
        or another subscriber's run of it is under way): the writer does not wait, as it serves
        every subscriber of the process, one event after another, and a document with nested
        reads, repeated under many aliases, would hold up everyone's events behind it."""
        assert self.executor is not None
        executor = self.executor.build_per_event_executor(OrderStatusChange.of(delivery))
        result = executor.execute_operation(False)
        if inspect.isawaitable(result):
            if wait:
                result = await result
            elif not (isinstance(result, asyncio.Future) and result.done()):
                return None
            else:
                result = result.result()
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            debug = debug_enabled(self.executor.context_value)
            result.errors[:] = [classify(error, debug=debug) for error in result.errors]
            payload["errors"] = [error.formatted for error in result.errors]
        return orjson.dumps(payload)[:-1]

    def message(self, rendered: bytes) -> bytes:
        assert self._suffix is not None
        return b"".join((self._prefix, rendered, self._suffix))


async def continue_detached(frames: LiveFrames, send: Callable[[bytes], Awaitable[None]]) -> None:
    """The rest of a subscription whose first event went out through Strawberry, in a task of
    its own (the socket's handler starts it, in place of the operation's, and cancels it on
    complete, a revoked key or the socket's end).

    The task that ran the operation ends, and with it Strawberry's stack under the subscription
    (its stream, the extensions' hooks, graphql-core's iterator, the resolver, the first
    event's result): a live subscription holds a few dozen objects instead of ~150, and every
    full garbage collection walks each of them (one that landed in a burst, with 1,000
    subscriptions, was a pause of ~135 ms). Its subscriber stays registered with the feed,
    whose writer writes its events while it keeps up; when it falls behind, this task catches
    up from the outbox, renders each event with the subscription's own executor, waiting for
    it, and sends it the way that waits for the socket (as Strawberry would have)."""
    subscriber = frames.subscriber
    assert subscriber is not None
    assert subscriber.detached
    try:
        subscriber.sink = frames
        async for delivery in subscriber.deliveries():
            payload = await frames.render(delivery, wait=True)
            assert payload is not None
            await send(frames.message(payload))
    finally:
        subscriber.feed.remove(subscriber)
        frames.release()
