"""Queueing webhooks: the relay calls `enqueue_for_events` in the transaction that marks a
batch of events published, so every event gets its deliveries exactly once (at least once on
the wire: the dispatcher retries).

Each body carries the event's `sequence` and `previousSequence`, the sequence of the event
queued before it to the same target (the same endpoint, or the same order's callback URL;
null for the first). Sequences are increasing across the whole outbox, so they skip the
numbers of events the target does not receive; `previousSequence` lets a receiver that sorts
by `sequence` tell a gap (an event it has not seen yet) from a number that was never its own.
The chain is exact when batches are queued in sequence order, as the relay publishes them.
"""

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.models import Mode
from app.events.changes import OrderStateChanged
from app.events.models import Event, WebhookDelivery, WebhookEndpoint

Scope = tuple[uuid.UUID, Mode, uuid.UUID | None]


async def enqueue_for_events(session: AsyncSession, events: Sequence[Event]) -> int:
    """Queue, for each order event, one delivery per active endpoint in its scope that takes
    its type, and one for the order's callback URL; a few queries for the whole batch, none
    when it is empty (the relay's idle poll)."""
    # Each event's change is built once, then mapped into every delivery it makes.
    changes = sorted(
        (
            change
            for change in map(OrderStateChanged.from_row, events)
            if change is not None and change.sequence is not None
        ),
        key=lambda change: change.sequence or 0,
    )
    if not changes:
        return 0
    accounts = {change.account_id for change in changes}
    endpoints_by_scope = await _endpoints_by_scope(session, accounts)
    endpoint_ids = [e.id for scoped in endpoints_by_scope.values() for e in scoped]
    # Only what was queued before this batch's first event counts: a batch committed out of
    # order can then make a receiver look again, but never chains back to a later event.
    before_batch = col(WebhookDelivery.event_sequence) < changes[0].sequence
    last_for_endpoint = await _last_sequence_by(
        session, col(WebhookDelivery.endpoint_id), endpoint_ids, before_batch
    )
    callback_orders = {change.order_id for change in changes if change.callback_url}
    last_for_callback = await _last_sequence_by(
        session,
        col(WebhookDelivery.order_id),
        callback_orders,
        col(WebhookDelivery.endpoint_id).is_(None),
        before_batch,
    )
    deliveries = []
    for change in changes:
        assert change.sequence is not None
        scope = (change.account_id, change.mode, change.subaccount_id)
        for endpoint in endpoints_by_scope.get(scope, []):
            if endpoint.event_types is not None and change.type not in endpoint.event_types:
                continue
            previous = last_for_endpoint.get(endpoint.id)
            last_for_endpoint[endpoint.id] = change.sequence
            deliveries.append(_delivery(change, endpoint.url, endpoint.id, previous))
        if change.callback_url is not None:
            previous = last_for_callback.get(change.order_id)
            last_for_callback[change.order_id] = change.sequence
            deliveries.append(_delivery(change, change.callback_url, None, previous))
    session.add_all(deliveries)
    return len(deliveries)


async def _endpoints_by_scope(
    session: AsyncSession, account_ids: set[uuid.UUID]
) -> dict[Scope, list[WebhookEndpoint]]:
    # Locked (in id order, so relays never deadlock) for the rest of the relay's transaction:
    # two relays queueing for one endpoint take turns, so each sees what the other queued.
    endpoints = (
        await session.exec(
            select(WebhookEndpoint)
            .where(
                col(WebhookEndpoint.account_id).in_(account_ids),
                col(WebhookEndpoint.disabled_at).is_(None),
            )
            .order_by(col(WebhookEndpoint.id))
            .with_for_update()
        )
    ).all()
    by_scope: dict[Scope, list[WebhookEndpoint]] = {}
    for endpoint in endpoints:
        scope = (endpoint.account_id, endpoint.mode, endpoint.subaccount_id)
        by_scope.setdefault(scope, []).append(endpoint)
    return by_scope


async def _last_sequence_by(
    session: AsyncSession,
    key: Any,
    values: Collection[uuid.UUID],
    *conditions: ColumnElement[bool],
) -> dict[uuid.UUID, int]:
    """The highest event sequence already queued for each value of `key` (a delivery column)."""
    if not values:
        return {}
    rows = await session.exec(
        select(key, func.max(WebhookDelivery.event_sequence))
        .where(key.in_(values), *conditions)
        .group_by(key)
    )
    return {value: last for value, last in rows.all() if value is not None}


def _delivery(
    change: OrderStateChanged,
    url: str,
    endpoint_id: uuid.UUID | None,
    previous_sequence: int | None,
) -> WebhookDelivery:
    assert change.sequence is not None
    return WebhookDelivery(
        account_id=change.account_id,
        mode=change.mode,
        subaccount_id=change.subaccount_id,
        event_sequence=change.sequence,
        event_type=change.type,
        order_id=change.order_id,
        endpoint_id=endpoint_id,
        url=url,
        payload=change.as_webhook_body(previous_sequence),
    )
