"""Reading events: an order's state history, and how far the outbox has been published."""

import uuid
from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.service import Principal, owned_by
from app.events.changes import OrderStateChanged
from app.events.models import Event


async def changes_of_orders(
    session: AsyncSession, principal: Principal, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[OrderStateChanged]]:
    """Each order's changes in the order they were written (an event may not have its
    sequence yet: the relay gives it one within moments)."""
    rows = (
        await session.exec(
            select(Event)
            .where(*owned_by(principal, Event), col(Event.order_id).in_(order_ids))
            .order_by(col(Event.position))
        )
    ).all()
    grouped: dict[uuid.UUID, list[OrderStateChanged]] = {}
    for event in rows:
        if change := OrderStateChanged.from_row(event):
            grouped.setdefault(change.order_id, []).append(change)
    return grouped


async def latest_sequence(session: AsyncSession) -> int:
    """The highest sequence published so far (0 before the first event)."""
    return (await session.exec(select(func.max(Event.sequence)))).one() or 0
