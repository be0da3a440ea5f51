"""Webhooks: address checks, signed deliveries to a real receiver, retries and attempts."""

import asyncio
import ipaddress
import uuid
from datetime import timedelta

import pytest
from sqlmodel import col, select
from standardwebhooks import Webhook

from app.accounts.models import Account, Mode
from app.db import Database, utcnow
from app.events.broker import MemoryBroker
from app.events.models import DeliveryState, WebhookAttempt, WebhookDelivery
from app.events.relay import relay_pending
from app.events.webhooks import (
    BACKOFF,
    address_allowed,
    callback_secret,
    create_endpoint,
    deliver_due,
    http_client,
)
from app.offsets import service as offsets
from app.offsets.fulfilment import fulfil_pending
from tests.conftest import TEST_SECRET, make_account
from tests.events.receiver import Receiver, webhook_receiver
from tests.offsets_fixtures import TONNE, principal_for, stock_of_tonnes


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.5", False),
        ("172.16.3.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),  # noqa: S104
        ("224.0.0.1", False),  # multicast
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:8.8.8.8", True),
        ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::7f00:1", False),  # NAT64 wrapping 127.0.0.1
        ("64:ff9b::808:808", True),  # NAT64 wrapping 8.8.8.8
        ("ff02::1", False),
    ],
)
def test_only_public_unicast_addresses_are_called(address: str, allowed: bool) -> None:
    assert address_allowed(ipaddress.ip_address(address)) is allowed


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
