"""A Redis that hangs (accepts, never answers) or is down (refuses connections) costs each of
its users at most one timeout per pause and fails no request: the rate limiter limits per
process, persisted documents are not found (the client sends the text again, as Apollo's APQ
link does), the doorbell's rings are skipped and the relay goes on, the response cache
answers uncached (tests/graphql/test_response_cache.py). Real sockets to a silent peer, and
the real Redis behind it for the recovery."""

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.accounts.rate_limits import RedisRateLimiter
from app.bounded_redis import BoundedCalls, RedisUnavailable
from app.config import Settings
from app.db import Database
from app.events.broker import RedisBroker
from app.graphql.persisted import RedisDocumentStore
from app.main import create_app
from tests.redis_peers import SilentPeer, dead_redis_url, upstream_of

TIMEOUT = 0.05


@asynccontextmanager
async def _redis(kind: str, redis_url: str) -> AsyncIterator[str]:
    """The URL of a Redis that hangs or is down."""
    if kind == "down":
        yield dead_redis_url()
        return
    async with SilentPeer(upstream_of(redis_url)) as peer:
        yield peer.url


async def test_bounded_calls_fail_fast_then_skip_redis_for_the_pause_then_probe_once(
    redis_url: str,
) -> None:
    async with SilentPeer(upstream_of(redis_url)) as peer:
        import redis.asyncio as redis

        client = redis.from_url(peer.url)
        calls = BoundedCalls("test", timeout_seconds=TIMEOUT, pause_seconds=0.3)
        try:
            started = time.monotonic()
            with pytest.raises(RedisUnavailable):
                await calls.run("get", lambda: client.get("k"))
            assert TIMEOUT <= time.monotonic() - started < 0.3
            received = peer.received
            started = time.monotonic()
            for _ in range(100):
                with pytest.raises(RedisUnavailable):
                    await calls.run("get", lambda: client.get("k"))
            assert time.monotonic() - started < 0.02  # no call made, none waited
            assert peer.received == received
            peer.silent = False  # answering again (new connections relay to the real Redis)
            await client.connection_pool.disconnect()
            await asyncio.sleep(0.35)
            assert await calls.run("get", lambda: client.get(f"cg:test:{uuid.uuid4().hex}")) is None
            assert calls.breaker.closed
        finally:
            await client.aclose()


@pytest.mark.parametrize("kind", ["hung", "down"])
async def test_the_rate_limit_holds_per_process_while_redis_fails(
    kind: str, redis_url: str
) -> None:
    async with _redis(kind, redis_url) as url:
        limiter = RedisRateLimiter(
            url, rate=0.001, maximum=10, timeout_seconds=TIMEOUT, pause_seconds=60
        )
        try:
            started = time.monotonic()
            statuses = [await limiter.take("key", 3) for _ in range(4)]
            elapsed = time.monotonic() - started
            refunded = await limiter.refund("key", 2)
        finally:
            await limiter.close()
    # 10 points: three takes of 3 pass, the fourth is refused, as the shared bucket would.
    assert [s.refused for s in statuses] == [False, False, False, True]
    assert 0.9 < statuses[2].currently_available < 1.1
    assert 2.9 < refunded.currently_available < 3.1
    assert elapsed < TIMEOUT + 0.2  # one timeout (at most), then the breaker skips Redis


@pytest.mark.parametrize("kind", ["hung", "down"])
async def test_a_persisted_document_is_not_found_and_not_waited_for_while_redis_fails(
    kind: str, redis_url: str
) -> None:
    async with _redis(kind, redis_url) as url:
        store = RedisDocumentStore(url, timeout_seconds=TIMEOUT, pause_seconds=60)
        try:
            started = time.monotonic()
            await store.put("a" * 64, "{ __typename }", owner="key")
            assert await store.get("a" * 64) is None
            assert await store.get("b" * 64) is None
            assert time.monotonic() - started < TIMEOUT + 0.2
        finally:
            await store.close()


@pytest.mark.parametrize("kind", ["hung", "down"])
async def test_a_ring_that_redis_cannot_take_is_skipped_and_this_process_still_hears_it(
    kind: str, redis_url: str
) -> None:
    async with _redis(kind, redis_url) as url:
        broker = RedisBroker(
            url, channel=f"cg:test:{uuid.uuid4().hex}", timeout_seconds=TIMEOUT, pause_seconds=60
        )
        heard: list[int | None] = []
        broker._local.listen(heard.append)  # this process's listeners, without the subscription
        try:
            started = time.monotonic()
            for sequence in range(1, 21):
                await broker.ring(sequence)
            assert time.monotonic() - started < TIMEOUT + 0.2  # the relay is not held up
        finally:
            await broker.close()
    assert heard == list(range(1, 21))


def _app(settings: Settings, db: Database, **changes: Any) -> httpx.AsyncClient:
    app = create_app(settings.model_copy(update=changes), database=db)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.mark.parametrize("kind", ["hung", "down"])
async def test_the_server_answers_every_request_promptly_while_redis_fails(
    kind: str, settings: Settings, db: Database, test_key: str, redis_url: str
) -> None:
    """The whole app on a failing Redis with every Redis use on: rate limits, persisted
    queries, the response cache, the doorbell. Queries and a mutation are answered, the rate
    limit still refuses past its burst, an unknown hash is PERSISTED_QUERY_NOT_FOUND and the
    text with its hash executes."""
    query = "{ viewer { mode } }"
    digest = hashlib.sha256(query.encode()).hexdigest()
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    headers = {"Authorization": f"Bearer {test_key}"}
    async with (
        _redis(kind, redis_url) as url,
        _app(
            settings,
            db,
            redis_url=url,
            redis_timeout_seconds=TIMEOUT,
            redis_pause_seconds=60,
            rate_limit_per_second=0.001,
            rate_limit_burst=40,
        ) as http,
    ):
        started = time.monotonic()
        answers = [await http.post("/graphql", json={"query": query}, headers=headers)]
        answers.append(await http.post("/graphql", json={"extensions": persisted}, headers=headers))
        answers.append(
            await http.post(
                "/graphql", json={"query": query, "extensions": persisted}, headers=headers
            )
        )
        answers.append(
            await http.post(
                "/graphql",
                json={
                    "query": 'mutation { createApiKey(input: {name: "k"}) { userErrors { code } } }'
                },
                headers=headers,
            )
        )
        elapsed = time.monotonic() - started
        throttled = None
        for _ in range(60):
            answer = await http.post("/graphql", json={"query": query}, headers=headers)
            if answer.status_code == 429:
                throttled = answer
                break
            assert answer.status_code == 200, answer.text
    first, unknown, registered, _ = (answer.json() for answer in answers)
    assert [a.status_code for a in answers] == [200, 404, 200, 200], [a.text[:300] for a in answers]
    assert first["data"] == {"viewer": {"mode": "TEST"}}
    assert unknown["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert registered["data"] == first["data"]
    assert elapsed < 1.0  # one timeout per Redis user at most, not one per call
    assert throttled is not None  # the burst of 40 points still bites, in this process
