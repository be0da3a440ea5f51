"""Reading deliveries and their attempts, for the graph."""

import uuid
from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.accounts.service import Principal, owned_by
from app.events.models import WebhookAttempt, WebhookDelivery


def deliveries_of(principal: Principal) -> SelectOfScalar[WebhookDelivery]:
    return select(WebhookDelivery).where(*owned_by(principal, WebhookDelivery))


async def deliveries_of_orders(
    session: AsyncSession, principal: Principal, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookDelivery]]:
    rows = (
        await session.exec(
            deliveries_of(principal)
            .where(col(WebhookDelivery.order_id).in_(order_ids))
            .order_by(col(WebhookDelivery.created_at), col(WebhookDelivery.event_sequence))
        )
    ).all()
    grouped: dict[uuid.UUID, list[WebhookDelivery]] = {}
    for delivery in rows:
        if delivery.order_id is not None:
            grouped.setdefault(delivery.order_id, []).append(delivery)
    return grouped


async def attempts_of_deliveries(
    session: AsyncSession, principal: Principal, delivery_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    rows = (
        await session.exec(
            select(WebhookAttempt)
            .join(WebhookDelivery, col(WebhookDelivery.id) == col(WebhookAttempt.delivery_id))
            .where(
                *owned_by(principal, WebhookDelivery),
                col(WebhookAttempt.delivery_id).in_(delivery_ids),
            )
            .order_by(col(WebhookAttempt.attempted_at))
        )
    ).all()
    grouped: dict[uuid.UUID, list[WebhookAttempt]] = {}
    for attempt in rows:
        grouped.setdefault(attempt.delivery_id, []).append(attempt)
    return grouped
