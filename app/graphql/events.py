"""Live events in the graph: the `orderStatusChanged` subscription, a thin skin over the
process's event feed (app/events/feed.py), which holds the delivery guarantee.

Fan-out cost: an event is mapped to `OrderStatusChange` once per process, and executed once per
group of subscribers that sent the same document and variables in the same scope
(`SharedEventExecution`); each subscriber then only encodes and sends the shared result.
"""

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Hashable
from datetime import datetime
from typing import Any

import orjson
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.errors import InvalidInput, NotFound
from app.events import service as events
from app.events.feed import Delivery
from app.graphql.context import Info
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
            key = self._sharing_key()
            if key is not None and (shared := payload.executions.get(key)) is not None:
                return _AlreadyExecuted(shared)
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
        return shared

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


class _AlreadyExecuted:
    """Stands in for graphql-core's per-event executor when the result already exists."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> Any:
        return self.result
