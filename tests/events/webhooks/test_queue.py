"""Queueing: each endpoint gets the event types it chose, every body chains to the previous
one of its target by sequence, and a 410 Gone disables the endpoint."""

import itertools
import json
from datetime import timedelta

from sqlmodel import col, select

from app.accounts.models import Account
from app.accounts.service import Principal
from app.db import Database, utcnow
from app.events.broker import MemoryBroker
from app.events.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.events.relay import relay_pending
from app.events.webhooks.dispatcher import deliver_due, http_client
from app.events.webhooks.endpoints import WebhookEventType, create_endpoint
from app.offsets import service as offsets
from app.offsets.fulfilment import fulfil_pending
from app.offsets.service import ORDER_EVENT_TYPES
from tests.conftest import TEST_SECRET, make_account
from tests.events.receiver import Receiver, webhook_receiver
from tests.offsets_fixtures import TONNE, place_one_tonne, principal_for, stock_of_tonnes


async def _endpoint(
    db: Database, admin: Principal, url: str, types: list[WebhookEventType] | None = None
) -> WebhookEndpoint:
    async with db.transaction() as session:
        return await create_endpoint(session, admin, url=url, event_types=types)


async def _relay_and_deliver(db: Database) -> None:
    await relay_pending(db, MemoryBroker())
    async with http_client() as client:
        await deliver_due(db, TEST_SECRET, client, allow_private=True)


def _bodies(receiver: Receiver, path_end: str = "") -> list[dict]:  # type: ignore[type-arg]
    """The bodies received (on paths ending in `path_end`), sorted by sequence."""
    return sorted(
        (json.loads(r.body) for r in receiver.requests if r.path.endswith(path_end)),
        key=lambda body: body["data"]["sequence"],
    )


def test_endpoints_can_choose_every_type_an_order_event_has() -> None:
    assert {t.value for t in WebhookEventType} == set(ORDER_EVENT_TYPES.values())


async def test_an_endpoint_receives_only_the_event_types_it_chose(db: Database) -> None:
    account = await make_account(db)
    admin = principal_for(account)
    await stock_of_tonnes(db, admin, [5])
    with webhook_receiver() as everything, webhook_receiver() as fulfilled_only:
        await _endpoint(db, admin, everything.url)
        await _endpoint(db, admin, fulfilled_only.url, [WebhookEventType.ORDER_FULFILLED])
        await place_one_tonne(db, admin)
        await fulfil_pending(db, TEST_SECRET)
        await _relay_and_deliver(db)
    assert [b["type"] for b in _bodies(everything)] == ["order.placed", "order.fulfilled"]
    assert [b["type"] for b in _bodies(fulfilled_only)] == ["order.fulfilled"]


async def test_each_body_names_the_previous_sequence_sent_to_its_target(db: Database) -> None:
    """A receiver sorting by `sequence` sees a gap exactly when a body's previousSequence is
    not the sequence before it; other accounts' events never look like gaps."""
    account = await make_account(db)
    other = await make_account(db, slug="other")
    admin, stranger = principal_for(account), principal_for(other)
    await stock_of_tonnes(db, admin, [5])
    await stock_of_tonnes(db, stranger, [5])
    with webhook_receiver() as receiver:
        await _endpoint(db, admin, receiver.url + "/endpoint")
        async with db.transaction() as session:
            await offsets.create_order_by_mass(
                session, admin, TONNE, offsets.OrderOptions(callback_url=receiver.url + "/cb")
            )
        await place_one_tonne(db, stranger)  # takes a sequence number between ours
        await fulfil_pending(db, TEST_SECRET)
        await _relay_and_deliver(db)
        await place_one_tonne(db, admin)  # a later batch continues the endpoint's chain
        await _relay_and_deliver(db)
    for path_end, expected_count in (("/endpoint", 3), ("/cb", 2)):
        chain = [body["data"] for body in _bodies(receiver, path_end)]
        assert len(chain) == expected_count
        assert chain[0]["previousSequence"] is None
        for before, after in itertools.pairwise(chain):
            assert after["previousSequence"] == before["sequence"]
    sequences = [body["data"]["sequence"] for body in _bodies(receiver, "/endpoint")]
    assert sequences[-1] - sequences[0] > len(sequences) - 1  # numbers were skipped: no gap


async def test_a_410_disables_the_endpoint_and_ends_its_pending_deliveries(db: Database) -> None:
    account: Account = await make_account(db)
    admin = principal_for(account)
    await stock_of_tonnes(db, admin, [5])
    with webhook_receiver() as receiver:
        receiver.statuses = [410]
        endpoint = await _endpoint(db, admin, receiver.url)
        await place_one_tonne(db, admin)
        await relay_pending(db, MemoryBroker())
        first_due = utcnow()
        await place_one_tonne(db, admin)
        await relay_pending(db, MemoryBroker())  # a second delivery, due after `first_due`
        async with http_client() as client:
            assert (
                await deliver_due(db, TEST_SECRET, client, allow_private=True, now=first_due) == 1
            )
        await place_one_tonne(db, admin)
        await relay_pending(db, MemoryBroker())  # queues nothing for a disabled endpoint
        async with http_client() as client:
            later = utcnow() + timedelta(days=1)
            assert await deliver_due(db, TEST_SECRET, client, allow_private=True, now=later) == 0
    assert len(receiver.requests) == 1
    async with db.session() as session:
        stored = await session.get(WebhookEndpoint, endpoint.id)
        deliveries = (
            await session.exec(
                select(WebhookDelivery).order_by(col(WebhookDelivery.event_sequence))
            )
        ).all()
        attempts = (await session.exec(select(WebhookAttempt))).all()
    assert stored is not None
    assert stored.disabled_at is not None
    assert [(d.state, d.attempt_count) for d in deliveries] == [
        (DeliveryState.FAILED, 1),
        (DeliveryState.FAILED, 0),
    ]
    assert [a.status_code for a in attempts] == [410]
    assert all(d.next_attempt_at is None for d in deliveries)
