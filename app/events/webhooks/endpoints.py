"""Account webhook endpoints: created with the event types they take, listed, and disabled
(by the account, or by the dispatcher when the receiver answers 410 Gone)."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.accounts.service import Principal, owned_by
from app.db import utcnow
from app.errors import InvalidInput, NotFound
from app.events.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from app.events.webhooks.signing import new_endpoint_secret
from app.events.webhooks.urls import validate_webhook_url

MAX_DESCRIPTION = 200


class WebhookEventType(StrEnum):
    """The event types an endpoint may choose (the `type` of a webhook body)."""

    ORDER_PLACED = "order.placed"
    ORDER_FULFILLED = "order.fulfilled"
    ORDER_CANCELLED = "order.cancelled"


async def create_endpoint(
    session: AsyncSession,
    principal: Principal,
    *,
    url: str,
    description: str = "",
    event_types: Sequence[WebhookEventType] | None = None,
) -> WebhookEndpoint:
    """`event_types` None: every type, including ones added later."""
    principal.require_admin()
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(
            f"Description must be at most {MAX_DESCRIPTION} characters.", "description"
        )
    if event_types is not None and not event_types:
        raise InvalidInput("Choose at least one event type, or omit it for all.", "eventTypes")
    endpoint = WebhookEndpoint(
        account_id=principal.account_id,
        mode=principal.mode,
        subaccount_id=principal.subaccount_id,
        url=validate_webhook_url(url, "url"),
        description=description.strip(),
        secret=new_endpoint_secret(),
        event_types=(
            None
            if event_types is None
            else sorted({WebhookEventType(t).value for t in event_types})
        ),
    )
    session.add(endpoint)
    await session.flush()
    return endpoint


def endpoints_of(principal: Principal) -> SelectOfScalar[WebhookEndpoint]:
    principal.require_admin()
    return select(WebhookEndpoint).where(
        *owned_by(principal, WebhookEndpoint), col(WebhookEndpoint.disabled_at).is_(None)
    )


async def disable_endpoint(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    endpoint = (
        await session.exec(endpoints_of(principal).where(WebhookEndpoint.id == endpoint_id))
    ).first()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.", "id")
    await stop_endpoint(session, endpoint, utcnow())
    return endpoint


async def stop_endpoint(session: AsyncSession, endpoint: WebhookEndpoint, now: datetime) -> None:
    """Disable `endpoint` and end its pending deliveries: nothing more is queued or sent.

    The endpoint row is written (locked) before its deliveries, as every writer of both does,
    so two transactions stopping one endpoint cannot deadlock."""
    endpoint.disabled_at = now
    await session.flush()
    await session.exec(
        update(WebhookDelivery)
        .where(
            col(WebhookDelivery.endpoint_id) == endpoint.id,
            col(WebhookDelivery.state) == DeliveryState.PENDING,
        )
        .values(state=DeliveryState.FAILED, completed_at=now, next_attempt_at=None)
    )
