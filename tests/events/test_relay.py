"""The outbox relay and the in-process broker."""

import uuid

from sqlmodel import col, select

from app.accounts.models import Mode
from app.db import Database
from app.events.broker import MemoryBroker, PublishedEvent, Subscription
from app.events.models import Event
from app.events.relay import relay_pending
from app.offsets.fulfilment import fulfil_pending
from tests.conftest import TEST_SECRET, make_account
from tests.offsets_fixtures import place_one_tonne, principal_for, stock_of_tonnes


async def test_relay_publishes_each_state_change_once_in_sequence_order(db: Database) -> None:
    account = await make_account(db)
    admin = principal_for(account)
    await stock_of_tonnes(db, admin, [5])
    order_id = await place_one_tonne(db, admin)
    await fulfil_pending(db, TEST_SECRET)
    broker = MemoryBroker()
    async with broker.subscribe() as subscription:
        assert await relay_pending(db, broker) == 2
        assert await relay_pending(db, broker) == 0
        first, second = subscription.queue.get_nowait(), subscription.queue.get_nowait()
    assert subscription.queue.empty()
    assert (first.order_id, first.previous_state, first.state) == (order_id, None, "PLACED")
    assert (second.previous_state, second.state) == ("PLACED", "FULFILLED")
    assert first.sequence < second.sequence
    async with db.session() as session:
        unpublished = (
            await session.exec(select(Event).where(col(Event.published_at).is_(None)))
        ).all()
    assert unpublished == []


async def test_published_events_survive_the_wire_format(db: Database) -> None:
    account = await make_account(db)
    admin = principal_for(account, Mode.LIVE)
    await stock_of_tonnes(db, admin, [1])
    await place_one_tonne(db, admin)
    broker = MemoryBroker()
    async with broker.subscribe() as subscription:
        await relay_pending(db, broker)
        event = subscription.queue.get_nowait()
    assert PublishedEvent.from_json(event.to_json()) == event
    assert event.mode is Mode.LIVE


def test_a_full_subscriber_is_marked_lagged_instead_of_blocking_the_broker() -> None:
    subscription = Subscription()
    event = PublishedEvent.from_json(
        '{"sequence": 1, "type": "order.placed", "account_id": "'
        + str(uuid.uuid4())
        + '", "mode": "TEST", "subaccount_id": null, "order_id": null,'
        ' "previous_state": null, "state": "PLACED", "occurred_at": "2026-01-01T00:00:00+00:00"}'
    )
    for _ in range(subscription.queue.maxsize + 5):
        subscription.offer(event)
    assert subscription.lagged
    assert subscription.queue.full()
