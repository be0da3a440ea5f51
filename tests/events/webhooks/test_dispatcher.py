"""The dispatcher: signed deliveries to a real receiver, retries, attempts, failures that
move on, and 410 Gone."""

import asyncio
import socket
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlmodel import col, select
from standardwebhooks import Webhook

from app.accounts.models import Account, Mode
from app.db import Database, utcnow
from app.events.broker import MemoryBroker
from app.events.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.events.relay import relay_pending
from app.events.webhooks.dispatcher import (
    BACKOFF,
    WebhookDispatcher,
    deliver_due,
    http_client,
)
from app.events.webhooks.endpoints import create_endpoint
from app.events.webhooks.signing import callback_secret
from app.offsets import service as offsets
from app.offsets.fulfilment import fulfil_pending
from tests.conftest import TEST_SECRET, make_account
from tests.events.receiver import Receiver, webhook_receiver
from tests.offsets_fixtures import TONNE, principal_for, stock_of_tonnes


async def _fulfilled_order_with_webhooks(
    db: Database, account: Account, receiver: Receiver
) -> tuple[uuid.UUID, str]:
    """An order with a callback URL and an account endpoint, fulfilled and relayed."""
    admin = principal_for(account)
    await stock_of_tonnes(db, admin, [5])
    async with db.transaction() as session:
        endpoint = await create_endpoint(session, admin, url=receiver.url + "/endpoint")
        order = await offsets.create_order_by_mass(
            session, admin, TONNE, offsets.OrderOptions(callback_url=receiver.url + "/callback")
        )
    await fulfil_pending(db, TEST_SECRET)
    assert await relay_pending(db, MemoryBroker()) == 2
    return order.id, endpoint.secret


async def _deliver(
    db: Database, *, allow_private: bool = True, after: timedelta = timedelta()
) -> int:
    async with http_client() as client:
        return await deliver_due(
            db, TEST_SECRET, client, allow_private=allow_private, now=utcnow() + after
        )


async def test_events_reach_callback_and_endpoint_signed(db: Database) -> None:
    account = await make_account(db)
    with webhook_receiver() as receiver:
        order_id, endpoint_secret = await _fulfilled_order_with_webhooks(db, account, receiver)
        assert await _deliver(db) == 4
    by_path: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    secrets = {
        "/hooks/carbon/endpoint": endpoint_secret,
        "/hooks/carbon/callback": callback_secret(TEST_SECRET, account.id, Mode.TEST),
    }
    for request in receiver.requests:
        # Verification with the Standard Webhooks reference library proves the signature.
        payload = Webhook(secrets[request.path]).verify(request.body, request.headers)
        by_path.setdefault(request.path, []).append(payload)
    for payloads in by_path.values():
        assert sorted(p["type"] for p in payloads) == ["order.fulfilled", "order.placed"]
        assert {p["data"]["mode"] for p in payloads} == {"TEST"}
    async with db.session() as session:
        deliveries = (await session.exec(select(WebhookDelivery))).all()
        attempts = (await session.exec(select(WebhookAttempt))).all()
    assert {d.state for d in deliveries} == {DeliveryState.SUCCEEDED}
    assert {d.order_id for d in deliveries} == {order_id}
    assert [a.status_code for a in attempts] == [200] * 4


async def test_failed_attempts_are_retried_with_backoff_and_recorded(db: Database) -> None:
    account = await make_account(db)
    with webhook_receiver() as receiver:
        receiver.statuses = [500, 500, 500, 500]  # the first attempt of each delivery fails
        await _fulfilled_order_with_webhooks(db, account, receiver)
        assert await _deliver(db) == 4
        assert await _deliver(db) == 0  # not due yet
        assert await _deliver(db, after=BACKOFF[0] + timedelta(seconds=1)) == 4
    async with db.session() as session:
        deliveries = (await session.exec(select(WebhookDelivery))).all()
        attempts = (
            await session.exec(select(WebhookAttempt).order_by(col(WebhookAttempt.attempted_at)))
        ).all()
    assert {d.state for d in deliveries} == {DeliveryState.SUCCEEDED}
    assert {d.attempt_count for d in deliveries} == {2}
    assert sorted(a.status_code or 0 for a in attempts) == [200] * 4 + [500] * 4
    # A retry is the same message: receivers dedupe on webhook-id.
    ids = [request.headers["webhook-id"] for request in receiver.requests]
    assert len(set(ids)) == 4
    assert len(ids) == 8


async def test_private_addresses_are_refused_unless_allowed(db: Database) -> None:
    account = await make_account(db)
    with webhook_receiver() as receiver:
        await _fulfilled_order_with_webhooks(db, account, receiver)
        assert await _deliver(db, allow_private=False) == 4
        await asyncio.sleep(0)
    assert receiver.requests == []
    async with db.session() as session:
        attempts = (await session.exec(select(WebhookAttempt))).all()
        deliveries = (await session.exec(select(WebhookDelivery))).all()
    assert all(a.error and a.error.startswith("refused:") for a in attempts)
    assert all(a.status_code is None for a in attempts)
    assert {d.state for d in deliveries} == {DeliveryState.PENDING}


async def test_a_delivery_gives_up_after_the_last_backoff(db: Database) -> None:
    account = await make_account(db)
    with webhook_receiver() as receiver:
        receiver.statuses = [503] * 100
        await _fulfilled_order_with_webhooks(db, account, receiver)
        elapsed = timedelta()
        await _deliver(db, after=elapsed)
        for wait in BACKOFF:
            elapsed += wait + timedelta(seconds=1)
            await _deliver(db, after=elapsed)
    async with db.session() as session:
        deliveries = (await session.exec(select(WebhookDelivery))).all()
    assert {d.state for d in deliveries} == {DeliveryState.FAILED}
    assert {d.attempt_count for d in deliveries} == {len(BACKOFF) + 1}
    assert {d.last_status_code for d in deliveries} == {503}


async def _old_delivery(db: Database, account: Account, url: str) -> uuid.UUID:
    """A pending delivery to `url` as older code stored it, before URLs were checked in full."""
    async with db.transaction() as session:
        delivery = WebhookDelivery(
            account_id=account.id,
            mode=Mode.TEST,
            event_sequence=1,
            event_type="order.placed",
            url=url,
            payload={"type": "order.placed", "data": {"sequence": 1}},
        )
        session.add(delivery)
    return delivery.id


async def _run_dispatcher_until(
    db: Database, done: Callable[[list[WebhookDelivery]], bool], *, allow_private: bool = True
) -> list[WebhookDelivery]:
    """The real dispatcher loop, in this process, until `done(deliveries)` or 10 s."""
    dispatcher = WebhookDispatcher(db, TEST_SECRET, allow_private=allow_private)
    task = asyncio.create_task(dispatcher.run())
    try:
        for _ in range(200):
            async with db.session() as session:
                deliveries = list((await session.exec(select(WebhookDelivery))).all())
            if done(deliveries):
                return deliveries
            await asyncio.sleep(0.05)
        raise AssertionError(f"dispatcher did not finish: {deliveries}")
    finally:
        dispatcher.stop()
        await task


async def _attempts_of(db: Database, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
    async with db.session() as session:
        statement = select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
        return list((await session.exec(statement)).all())


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://example.com:99999/", "refused: Not a valid URL: Port out of range"),
        ("http://[::1/", "refused: Not a valid URL: Invalid IPv6 URL"),
        ("http://127.0.0.1:{closed}/hook", "ConnectError"),
    ],
    ids=["bad-port", "bad-ipv6", "connection-refused"],
)
async def test_an_undeliverable_url_records_a_failed_attempt_and_the_queue_moves_on(
    db: Database, caplog: pytest.LogCaptureFixture, url: str, error: str
) -> None:
    account = await make_account(db)
    with socket.socket() as closed:  # a port with nothing listening
        closed.bind(("127.0.0.1", 0))
        url = url.format(closed=closed.getsockname()[1])
    with webhook_receiver() as receiver:
        bad = await _old_delivery(db, account, url)
        good = await _old_delivery(db, account, receiver.url)
        deliveries = await _run_dispatcher_until(
            db, lambda rows: all(row.attempt_count for row in rows)
        )
    by_id = {delivery.id: delivery for delivery in deliveries}
    assert by_id[good].state is DeliveryState.SUCCEEDED
    assert by_id[bad].state is DeliveryState.PENDING  # retried later, like any failure
    assert by_id[bad].attempt_count == 1
    assert by_id[bad].next_attempt_at is not None
    assert by_id[bad].next_attempt_at > utcnow() + BACKOFF[0] - timedelta(seconds=2)
    [attempt] = await _attempts_of(db, bad)
    assert attempt.status_code is None
    assert attempt.error is not None
    assert attempt.error.startswith(error)
    assert "pass failed" not in caplog.text


async def test_a_410_from_a_callback_url_ends_that_delivery_without_retries(
    db: Database,
) -> None:
    account = await make_account(db)
    with webhook_receiver() as receiver:
        receiver.statuses = [410]
        delivery_id = await _old_delivery(db, account, receiver.url)
        assert await _deliver(db) == 1
        assert await _deliver(db, after=timedelta(days=1)) == 0
    async with db.session() as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
    assert delivery is not None
    assert (delivery.state, delivery.attempt_count, delivery.last_status_code) == (
        DeliveryState.FAILED,
        1,
        410,
    )


async def test_deliveries_left_pending_for_a_disabled_endpoint_are_ended_unsent(
    db: Database,
) -> None:
    account = await make_account(db)
    admin = principal_for(account)
    with webhook_receiver() as receiver:
        async with db.transaction() as session:
            endpoint = await create_endpoint(session, admin, url=receiver.url)
        delivery_id = await _old_delivery(db, account, receiver.url)
        async with db.transaction() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            stored = await session.get(WebhookEndpoint, endpoint.id)
            assert delivery is not None
            assert stored is not None
            delivery.endpoint_id = endpoint.id
            stored.disabled_at = utcnow()  # as older code disabled: deliveries left pending
        assert await _deliver(db) == 0
    assert receiver.requests == []
    async with db.session() as session:
        ended = await session.get(WebhookDelivery, delivery_id)
    assert ended is not None
    assert (ended.state, ended.attempt_count) == (DeliveryState.FAILED, 0)


async def test_a_slow_endpoint_never_holds_up_a_healthy_one(db: Database) -> None:
    account = await make_account(db)
    loop = asyncio.get_running_loop()
    seen: list[float] = []

    def healthy_sent(rows: list[WebhookDelivery]) -> bool:
        done = any(r.id == healthy and r.state == DeliveryState.SUCCEEDED for r in rows)
        if done:
            seen.append(loop.time())
            slow_before.extend(r for r in rows if r.id != healthy and r.attempt_count)
        return done

    slow_before: list[WebhookDelivery] = []
    with webhook_receiver() as receiver:
        receiver.delays["/slow"] = 3.0
        for _ in range(25):  # more than one claim batch of slow sends
            await _old_delivery(db, account, receiver.url + "/slow")
        healthy = await _old_delivery(db, account, receiver.url + "/ok")
        started = loop.time()
        await _run_dispatcher_until(db, healthy_sent)  # then waits for the slow ones to end
    assert seen[0] - started < 2.0, f"the healthy delivery waited {seen[0] - started:.1f} s"
    assert slow_before == []  # none of the slow sends had finished by then
