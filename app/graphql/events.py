"""Live events in the graph: the `orderStatusChanged` subscription, a thin skin over the
process's event feed (app/events/feed.py), which holds the delivery guarantee."""

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

from app.events.feed import Delivery
from app.graphql.context import Info
from app.graphql.dataloaders import create_dataloaders
from app.graphql.offsets import Order, OrderState, order_state
from app.graphql.relay import parse_global_id
from app.offsets import models as order_models
from app.offsets.models import OffsetOrder


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
        async with background.feed.subscribe(principal, wanted, after_sequence) as subscriber:
            async for delivery in subscriber.deliveries():
                # The socket's context outlives each event: nested fields must not come from
                # loaders that cached an earlier state of the order.
                info.context.loaders = create_dataloaders(info.context.db, principal)
                yield OrderStatusChange.from_delivery(delivery)
