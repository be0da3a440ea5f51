"""Live events in the graph: the `orderStatusChanged` subscription."""

import uuid
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime

import strawberry

from app.accounts.service import Principal, can_see
from app.events import service as events
from app.events.broker import PublishedEvent
from app.events.models import Event
from app.graphql.context import Info
from app.graphql.dataloaders import create_dataloaders
from app.graphql.offsets import Order, OrderState
from app.graphql.relay import parse_global_id
from app.offsets import models as order_models
from app.offsets import service as offsets


@strawberry.type
class OrderStatusChange:
    sequence: int = strawberry.field(
        description="Increases with every event; pass the last one seen as `afterSequence`."
    )
    order: Order = strawberry.field(description="The order as it is now.")
    previous_state: OrderState | None  # type: ignore[valid-type]
    state: OrderState  # type: ignore[valid-type]
    occurred_at: datetime


async def _changes(
    info: Info, principal: Principal, items: Sequence[Event | PublishedEvent]
) -> list[OrderStatusChange]:
    order_ids = list({item.order_id for item in items if item.order_id is not None})
    async with info.context.db.session() as session:
        orders = {
            order.id: order for order in await offsets.orders_by_ids(session, principal, order_ids)
        }
    # On a WebSocket the context lives as long as the socket: give each event fresh loaders,
    # so nested fields never come from a cache filled by an earlier event.
    info.context.loaders = create_dataloaders(info.context.db, principal)
    return [
        OrderStatusChange(
            sequence=item.sequence or 0,
            order=Order.from_row(orders[item.order_id]),
            previous_state=order_models.OrderState(item.previous_state)
            if item.previous_state
            else None,
            state=order_models.OrderState(item.state),
            occurred_at=item.occurred_at,
        )
        for item in items
        if item.order_id in orders and item.state
    ]


async def _replay(
    info: Info, principal: Principal, order_id: uuid.UUID | None, after: int
) -> AsyncGenerator[OrderStatusChange, None]:
    while True:
        async with info.context.db.session() as session:
            batch = await events.order_events_after(session, principal, after, order_id)
        if not batch:
            return
        for change in await _changes(info, principal, batch):
            yield change
        after = batch[-1].sequence or after


@strawberry.type
class EventSubscriptions:
    @strawberry.subscription(
        description="Order state changes of your account, mode and subaccount, as they happen. "
        "With `afterSequence`, first replays what came after it."
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
        last = after_sequence
        # Subscribe before replaying, so nothing published meanwhile falls between the two.
        async with background.broker.subscribe() as live:
            if last is not None:
                async for change in _replay(info, principal, wanted, last):
                    last = change.sequence
                    yield change
            while True:
                event = await live.next()
                if live.lagged:
                    live.lagged = False
                    async for change in _replay(
                        info, principal, wanted, last if last is not None else event.sequence - 1
                    ):
                        last = change.sequence
                        yield change
                    continue
                if last is not None and event.sequence <= last:
                    continue
                if not can_see(principal, event.account_id, event.mode, event.subaccount_id):
                    continue
                if event.order_id is None or (wanted is not None and event.order_id != wanted):
                    continue
                for change in await _changes(info, principal, [event]):
                    last = change.sequence
                    yield change
