"""Webhooks: signed (Standard Webhooks) POSTs of order events, retried with backoff, every
attempt recorded, and never sent to private addresses unless CG_ALLOW_PRIVATE_WEBHOOKS is on.

Deliveries are queued in the relay's transaction, next to the event they carry; the
dispatcher claims due ones (SKIP LOCKED on PostgreSQL), leases them, sends them concurrently
and records each attempt.
"""

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar
from standardwebhooks import Webhook

from app.accounts.models import Mode
from app.accounts.service import Principal, owned_by
from app.db import Database, utcnow
from app.errors import InvalidInput, NotFound
from app.events.changes import OrderStateChanged
from app.events.models import (
    DeliveryState,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.loops import PollingLoop

log = logging.getLogger(__name__)
MAX_URL = 2048
REQUEST_TIMEOUT_SECONDS = 10
# Waits after the 1st, 2nd, … failed attempt; after the last the delivery is FAILED.
BACKOFF = (
    timedelta(seconds=10),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
    timedelta(hours=12),
)
MAX_ATTEMPTS = len(BACKOFF) + 1
LEASE = timedelta(seconds=60)  # a claimed delivery is not claimed again while being sent
CLAIM_BATCH = 20
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class WebhookRefused(Exception):
    """The URL may not be called (it resolves to a private address, or does not resolve)."""


def validate_webhook_url(url: str, field: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_URL:
        raise InvalidInput("Must be an absolute http(s) URL of at most 2048 characters.", field)
    if parts.username or parts.password:
        raise InvalidInput("Credentials in the URL are not allowed.", field)
    return url


def address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Only globally routable unicast addresses, including behind IPv6 wrappers of IPv4
    (mapped, 6to4, Teredo, NAT64) that `is_global` alone would let through."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo:
            embedded = address.teredo[1]
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_allowed(embedded)
    return address.is_global and not address.is_multicast


async def resolve_allowed(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to: every A/AAAA record is checked, not just the first."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise WebhookRefused(f"cannot resolve {host}: {error}") from error
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise WebhookRefused(f"{host} has no addresses")
    if not allow_private:
        refused = [str(a) for a in addresses if not address_allowed(a)]
        if refused:
            raise WebhookRefused(f"{host} resolves to non-public address {refused[0]}")
    return str(addresses[0])


def new_endpoint_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def callback_secret(server_secret: str, account_id: uuid.UUID, mode: Mode) -> str:
    """The secret that signs deliveries to orders' `callbackUrl`s, one per account and mode."""
    key = hmac.new(
        server_secret.encode(),
        f"callback-secret:{account_id}:{mode.value}".encode(),
        hashlib.sha256,
    ).digest()
    return "whsec_" + base64.b64encode(key).decode()


async def enqueue_for_events(session: AsyncSession, events: Sequence[Event]) -> int:
    """Queue, for each order event, one delivery per active endpoint in its scope and one for
    the order's callback URL; one endpoint query for the whole batch, in the caller's (the
    relay's) transaction."""
    if not events:
        return 0  # the relay's idle poll: no query
    accounts = {event.account_id for event in events}
    endpoints = (
        await session.exec(
            select(WebhookEndpoint).where(
                col(WebhookEndpoint.account_id).in_(accounts),
                col(WebhookEndpoint.disabled_at).is_(None),
            )
        )
    ).all()
    by_scope: dict[tuple[uuid.UUID, Mode, uuid.UUID | None], list[WebhookEndpoint]] = {}
    for endpoint in endpoints:
        scope = (endpoint.account_id, endpoint.mode, endpoint.subaccount_id)
        by_scope.setdefault(scope, []).append(endpoint)
    queued = 0
    for event in events:
        scope = (event.account_id, event.mode, event.subaccount_id)
        queued += _enqueue(session, event, by_scope.get(scope, []))
    return queued


def _enqueue(session: AsyncSession, event: Event, endpoints: Sequence[WebhookEndpoint]) -> int:
    change = OrderStateChanged.from_row(event)
    if change is None or change.sequence is None:
        return 0
    targets: list[tuple[uuid.UUID | None, str]] = [(e.id, e.url) for e in endpoints]
    if change.callback_url is not None:
        targets.append((None, change.callback_url))
    body = change.as_webhook_body()
    session.add_all(
        [
            WebhookDelivery(
                account_id=event.account_id,
                mode=event.mode,
                subaccount_id=event.subaccount_id,
                event_sequence=change.sequence,
                event_type=event.type,
                order_id=event.order_id,
                endpoint_id=endpoint_id,
                url=url,
                payload=body,
            )
            for endpoint_id, url in targets
        ]
    )
    return len(targets)


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery: WebhookDelivery
    secret: str


async def _claim_due(db: Database, server_secret: str, now: datetime) -> list[ClaimedDelivery]:
    due_at_now = select(WebhookDelivery).where(
        WebhookDelivery.state == DeliveryState.PENDING,
        col(WebhookDelivery.next_attempt_at) <= now,
    )
    # Look before locking, so an idle dispatcher never takes SQLite's write lock.
    async with db.session() as session:
        if (await session.exec(due_at_now.limit(1))).first() is None:
            return []
    async with db.transaction() as session:
        due = (
            await session.exec(
                due_at_now.order_by(col(WebhookDelivery.next_attempt_at))
                .limit(CLAIM_BATCH)
                .with_for_update(skip_locked=True)
            )
        ).all()
        endpoint_ids = [d.endpoint_id for d in due if d.endpoint_id is not None]
        secrets_by_endpoint = {
            endpoint.id: endpoint.secret
            for endpoint in (
                await session.exec(
                    select(WebhookEndpoint).where(col(WebhookEndpoint.id).in_(endpoint_ids))
                )
            ).all()
        }
        claimed = []
        for delivery in due:
            delivery.next_attempt_at = now + LEASE
            secret = (
                secrets_by_endpoint[delivery.endpoint_id]
                if delivery.endpoint_id is not None
                else callback_secret(server_secret, delivery.account_id, delivery.mode)
            )
            claimed.append(ClaimedDelivery(delivery, secret))
    return claimed


async def _send(
    client: httpx.AsyncClient, claimed: ClaimedDelivery, allow_private: bool
) -> tuple[int | None, str | None]:
    """POST one delivery; (status code, error). Connects to the address it checked, so a DNS
    answer cannot change between the check and the request; redirects are not followed."""
    delivery = claimed.delivery
    parts = urlsplit(delivery.url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = await resolve_allowed(host, port, allow_private)
    except WebhookRefused as error:
        return None, f"refused: {error}"
    netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    body = json.dumps(delivery.payload, separators=(",", ":"))
    message_id = f"msg_{delivery.id.hex}"  # the same on every retry, for receivers to dedupe
    timestamp = utcnow()
    headers = {
        "content-type": "application/json",
        "user-agent": "CarbonGateway-Webhooks/1",
        "host": parts.netloc.rsplit("@", 1)[-1],
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(claimed.secret).sign(message_id, timestamp, body),
    }
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    try:
        response = await client.post(target, content=body, headers=headers, extensions=extensions)
    except httpx.HTTPError as error:
        return None, f"{type(error).__name__}: {error}"[:500]
    return response.status_code, None


async def _record(
    db: Database,
    claimed: ClaimedDelivery,
    status: int | None,
    error: str | None,
    duration_ms: int,
    now: datetime,
) -> None:
    async with db.transaction() as session:
        delivery = await session.get(WebhookDelivery, claimed.delivery.id)
        if delivery is None or delivery.state is not DeliveryState.PENDING:
            return
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                attempted_at=now,
                status_code=status,
                error=error,
                duration_ms=duration_ms,
            )
        )
        delivery.attempt_count += 1
        delivery.last_status_code = status
        if status is not None and 200 <= status < 300:
            delivery.state = DeliveryState.SUCCEEDED
            delivery.completed_at = now
            delivery.next_attempt_at = None
        elif delivery.attempt_count >= MAX_ATTEMPTS:
            delivery.state = DeliveryState.FAILED
            delivery.completed_at = now
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = now + BACKOFF[delivery.attempt_count - 1]


async def deliver_due(
    db: Database,
    server_secret: str,
    client: httpx.AsyncClient,
    *,
    allow_private: bool,
    now: datetime | None = None,
) -> int:
    """Send every delivery due at `now` (one claim batch); how many were attempted."""
    now = now or utcnow()
    claimed = await _claim_due(db, server_secret, now)

    async def attempt(item: ClaimedDelivery) -> None:
        started = time.perf_counter()
        status, error = await _send(client, item, allow_private)
        duration_ms = int((time.perf_counter() - started) * 1000)
        await _record(db, item, status, error, duration_ms, utcnow())

    await asyncio.gather(*(attempt(item) for item in claimed))
    return len(claimed)


def http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=REQUEST_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
    )


class WebhookDispatcher(PollingLoop):
    name = "webhook dispatcher"
    poll_interval = 0.5

    def __init__(self, db: Database, server_secret: str, *, allow_private: bool) -> None:
        super().__init__()
        self.db = db
        self.server_secret = server_secret
        self.allow_private = allow_private

        self._client: httpx.AsyncClient | None = None

    async def run(self) -> None:
        async with http_client() as client:  # one connection pool for the loop's life
            self._client = client
            await super().run()

    async def run_pass(self) -> None:
        assert self._client is not None
        while (
            await deliver_due(
                self.db, self.server_secret, self._client, allow_private=self.allow_private
            )
            == CLAIM_BATCH
        ):
            pass


# Account endpoints and reads, for the graph.


async def create_endpoint(
    session: AsyncSession, principal: Principal, *, url: str, description: str = ""
) -> WebhookEndpoint:
    principal.require_admin()
    if len(description) > 200:
        raise InvalidInput("Description must be at most 200 characters.", "description")
    endpoint = WebhookEndpoint(
        account_id=principal.account_id,
        mode=principal.mode,
        subaccount_id=principal.subaccount_id,
        url=validate_webhook_url(url, "url"),
        description=description.strip(),
        secret=new_endpoint_secret(),
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
    endpoint.disabled_at = utcnow()
    await session.flush()
    return endpoint


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
