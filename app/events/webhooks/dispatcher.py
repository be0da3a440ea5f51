"""Sending webhooks: the dispatcher claims due deliveries (SKIP LOCKED on PostgreSQL), leases
them, sends them concurrently and records every attempt.

Whatever goes wrong with one delivery — a URL that no longer parses, a name that does not
resolve, an address the policy refuses, a refused connection, a timeout — becomes a failed
attempt with its error text and the next retry is scheduled; it never stops the others or
fails the pass. A 410 Gone from an endpoint disables it.
"""

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlmodel import col, select

from app.db import Database, utcnow
from app.events.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.events.webhooks.endpoints import stop_endpoint
from app.events.webhooks.signing import callback_secret, signature_headers
from app.events.webhooks.urls import WebhookRefused, parse_webhook_url, resolve_allowed
from app.loops import PollingLoop

log = logging.getLogger(__name__)
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
MAX_IN_FLIGHT = 100  # sends at once per process
GONE = 410  # the receiver says the endpoint is gone for good
MAX_ERROR = 500


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery: WebhookDelivery
    secret: str


@dataclass(frozen=True)
class Outcome:
    status: int | None  # None when no response came
    error: str | None


async def _claim_due(
    db: Database, server_secret: str, now: datetime, limit: int = CLAIM_BATCH
) -> list[ClaimedDelivery]:
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
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        endpoint_ids = [d.endpoint_id for d in due if d.endpoint_id is not None]
        endpoints = {
            endpoint.id: endpoint
            for endpoint in (
                await session.exec(
                    select(WebhookEndpoint).where(col(WebhookEndpoint.id).in_(endpoint_ids))
                )
            ).all()
        }
        claimed = []
        for delivery in due:
            endpoint = endpoints[delivery.endpoint_id] if delivery.endpoint_id else None
            if endpoint is not None and endpoint.disabled_at is not None:
                # Disabled by older code, which left its deliveries pending: end them.
                delivery.state = DeliveryState.FAILED
                delivery.completed_at = now
                delivery.next_attempt_at = None
                continue
            delivery.next_attempt_at = now + LEASE
            secret = (
                endpoint.secret
                if endpoint is not None
                else callback_secret(server_secret, delivery.account_id, delivery.mode)
            )
            claimed.append(ClaimedDelivery(delivery, secret))
    return claimed


async def _send(
    client: httpx.AsyncClient, claimed: ClaimedDelivery, allow_private: bool
) -> Outcome:
    """POST one delivery. Connects to the address it checked, so a DNS answer cannot change
    between the check and the request; redirects are not followed."""
    delivery = claimed.delivery
    try:
        target = parse_webhook_url(delivery.url)  # stored before URLs were checked in full
        address = await resolve_allowed(target.host, target.port, allow_private)
    except WebhookRefused as error:
        return Outcome(None, f"refused: {error}"[:MAX_ERROR])
    netloc = f"[{address}]:{target.port}" if ":" in address else f"{address}:{target.port}"
    body = json.dumps(delivery.payload, separators=(",", ":"))
    message_id = f"msg_{delivery.id.hex}"  # the same on every retry, for receivers to dedupe
    headers = {
        "content-type": "application/json",
        "user-agent": "CarbonGateway-Webhooks/1",
        "host": target.host_header,
        **signature_headers(claimed.secret, message_id, utcnow(), body),
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        response = await client.post(
            f"{target.scheme}://{netloc}{target.path_and_query}",
            content=body,
            headers=headers,
            extensions=extensions,
        )
    except httpx.HTTPError as error:
        return Outcome(None, f"{type(error).__name__}: {error}"[:MAX_ERROR])
    return Outcome(response.status_code, None)


async def _record(
    db: Database, claimed: ClaimedDelivery, outcome: Outcome, duration_ms: int, now: datetime
) -> None:
    async with db.transaction() as session:
        endpoint = None
        if outcome.status == GONE and claimed.delivery.endpoint_id is not None:
            # The endpoint is locked before the delivery, as `stop_endpoint` needs it.
            endpoint = (
                await session.exec(
                    select(WebhookEndpoint)
                    .where(WebhookEndpoint.id == claimed.delivery.endpoint_id)
                    .with_for_update()
                )
            ).first()
        delivery = await session.get(WebhookDelivery, claimed.delivery.id)
        if delivery is None:
            return
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                attempted_at=now,
                status_code=outcome.status,
                error=outcome.error,
                duration_ms=duration_ms,
            )
        )
        delivery.attempt_count += 1
        delivery.last_status_code = outcome.status
        if delivery.state is not DeliveryState.PENDING:
            return  # its endpoint was stopped while this attempt was under way
        succeeded = outcome.status is not None and 200 <= outcome.status < 300
        if succeeded or outcome.status == GONE or delivery.attempt_count >= MAX_ATTEMPTS:
            delivery.state = DeliveryState.SUCCEEDED if succeeded else DeliveryState.FAILED
            delivery.completed_at = now
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = now + BACKOFF[delivery.attempt_count - 1]
        if endpoint is not None and endpoint.disabled_at is None:
            log.warning("webhook endpoint %s answered 410 Gone: disabled", endpoint.id)
            await session.flush()
            await stop_endpoint(session, endpoint, now)


async def _attempt(
    db: Database, client: httpx.AsyncClient, claimed: ClaimedDelivery, allow_private: bool
) -> None:
    started = time.perf_counter()
    try:
        outcome = await _send(client, claimed, allow_private)
    except Exception as error:  # a bug or an odd failure: still one failed attempt
        log.exception("webhook delivery %s failed unexpectedly", claimed.delivery.id)
        outcome = Outcome(None, f"{type(error).__name__}: {error}"[:MAX_ERROR])
    duration_ms = int((time.perf_counter() - started) * 1000)
    await _record(db, claimed, outcome, duration_ms, utcnow())


async def deliver_due(
    db: Database,
    server_secret: str,
    client: httpx.AsyncClient,
    *,
    allow_private: bool,
    now: datetime | None = None,
) -> int:
    """Send every delivery due at `now` (one claim batch); how many were attempted."""
    claimed = await _claim_due(db, server_secret, now or utcnow())
    results = await asyncio.gather(
        *(_attempt(db, client, item, allow_private) for item in claimed), return_exceptions=True
    )
    for item, result in zip(claimed, results, strict=True):
        if isinstance(result, BaseException):
            # Not recorded (the database failed?): the lease runs out and it is tried again.
            log.error("recording webhook delivery %s failed: %r", item.delivery.id, result)
    return len(claimed)


def http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=REQUEST_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
    )


class WebhookDispatcher(PollingLoop):
    """Claims due deliveries and sends each in its own task, without waiting for the batch:
    a slow or failing endpoint (up to the request timeout) never holds up the others. At most
    MAX_IN_FLIGHT sends run at once per process; each finished send wakes the loop to claim
    more."""

    name = "webhook dispatcher"
    poll_interval = 0.5

    def __init__(self, db: Database, server_secret: str, *, allow_private: bool) -> None:
        super().__init__()
        self.db = db
        self.server_secret = server_secret
        self.allow_private = allow_private
        self._client: httpx.AsyncClient | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        async with http_client() as client:  # one connection pool for the loop's life
            self._client = client
            try:
                await super().run()
            finally:
                # Sends under way finish (each is bounded by the request timeout); any cut
                # short is tried again when its lease runs out.
                if self._in_flight:
                    await asyncio.wait(self._in_flight, timeout=REQUEST_TIMEOUT_SECONDS)
                for task in self._in_flight:
                    task.cancel()

    async def run_pass(self) -> None:
        while (free := min(MAX_IN_FLIGHT - len(self._in_flight), CLAIM_BATCH)) > 0:
            claimed = await _claim_due(self.db, self.server_secret, utcnow(), free)
            for item in claimed:
                task = asyncio.create_task(self._send(item))
                self._in_flight.add(task)
                task.add_done_callback(self._finished)
            if len(claimed) < free:
                return

    async def _send(self, item: ClaimedDelivery) -> None:
        assert self._client is not None
        try:
            await _attempt(self.db, self._client, item, self.allow_private)
        except Exception as error:
            # Not recorded (the database failed?): the lease runs out and it is tried again.
            log.error("recording webhook delivery %s failed: %r", item.delivery.id, error)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self.wake()
