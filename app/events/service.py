"""Reading events: an order's state history."""

import uuid
from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.service import Principal, owned_by
from app.events.models import Event


async def events_of_orders(
    session: AsyncSession, principal: Principal, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Event]]:
    rows = (
        await session.exec(
            select(Event)
            .where(*owned_by(principal, Event), col(Event.order_id).in_(order_ids))
            .order_by(col(Event.sequence))
        )
    ).all()
    grouped: dict[uuid.UUID, list[Event]] = {}
    for event in rows:
        if event.order_id is not None:
            grouped.setdefault(event.order_id, []).append(event)
    return grouped


async def order_events_after(
    session: AsyncSession,
    principal: Principal,
    after_sequence: int,
    order_id: uuid.UUID | None = None,
    limit: int = 1_000,
) -> Sequence[Event]:
    """Order events the principal may see with a sequence above `after_sequence`, in order."""
    statement = (
        select(Event)
        .where(
            *owned_by(principal, Event),
            col(Event.sequence) > after_sequence,
            col(Event.order_id).is_not(None),
        )
        .order_by(col(Event.sequence))
        .limit(limit)
    )
    if order_id is not None:
        statement = statement.where(Event.order_id == order_id)
    return (await session.exec(statement)).all()
