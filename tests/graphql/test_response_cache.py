"""The response cache never answers stale: random writes from every writer, interleaved with
cached reads (through the HTTP entry, where hits are answered before Strawberry), each compared
with an uncached execution at that moment, on both databases."""

import asyncio
import dataclasses
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from app.accounts.models import Account, AccountStatus, Mode
from app.config import Settings
from app.db import Database, utcnow
from app.events.broker import MemoryBroker
from app.events.relay import relay_pending
from app.events.webhooks.dispatcher import deliver_due, http_client
from app.graphql.cache_hits import CacheHits
from app.graphql.response_cache import (
    MemoryResponseStore,
    RedisResponseStore,
    create_response_cache,
)
from app.graphql.schema import export_sdl
from app.main import create_app
from app.offsets.fulfilment import fulfil_pending
from tests.conftest import (
    TEST_SECRET,
    counting_statements,
    make_account,
    make_key,
    versions_statements,
)
from tests.events.receiver import Receiver, webhook_receiver
from tests.offsets_fixtures import (
    fulfil,
    gid,
    make_subaccount,
    place_order,
    principal_for,
    seed_catalog,
)
from tests.redis_peers import SilentPeer, upstream_of

STEPS = 90
SEED = 20261202
ORDERS = """{ orders(first: 20) { edges { node { id state createdAt mass { amount unit }
  allocations { mass { amount unit } project { id name } }
  certificate { id publicUrl } history { state previousState sequence } } } } }"""
# What compiled plans answer (app/graphql/plans.py): checked against a plans-off twin too.
PLANNED = """{ orders(first: 20) { totalCount edges { cursor node { id state createdAt
  mass { amount unit } price { amount currency } certificate { id publicUrl }
  allocations { serialRange mass { amount } project { id name } bundle { id name }
    creditBatch { vintage } } } } } }"""
ORDER = """query($id: ID!) { order(id: $id) { id state price { amount currency } fulfilledAt
  cancelledAt webhookDeliveries { state attemptCount lastStatusCode attempts { statusCode } }
  history { state sequence } } }"""
QUOTE = """{ quoteByMass(input: {mass: {amount: "2", unit: T}}) {
  quote { inventorySufficient totalCost { amount currency } bundles { mass { amount } } }
  userErrors { code } } }"""
CATALOG = """{ bundles(first: 10) { edges { node { id name availableMass { amount unit } } } }
  projects(first: 10) { edges { node { id name
    creditBatches { vintage remaining { amount } } } } } }"""
WEBHOOKS = """{ webhookEndpoints(first: 10) { edges { node { id url } } }
  webhookDeliveries(first: 30) { edges { node { id state attemptCount lastStatusCode
    attempts { statusCode } } } } }"""
VIEWER = """{ viewer { mode admin subaccount { id } account { status } } }"""
KEYS = """{ viewer { mode admin }
  apiKeys(first: 20) { edges { node { id name lastUsedAt revokedAt } } } }"""
CREATE = """mutation($input: CreateOrderByMassInput!) { createOrderByMass(input: $input) {
  order { id } userErrors { code } } }"""
CANCEL = (
    """mutation($id: ID!) { cancelOrder(input: {id: $id}) { order { id } userErrors { code } } }"""
)
ADD_BATCH = """mutation($input: AddCreditBatchInput!) { addCreditBatch(input: $input) {
  userErrors { code } } }"""
ADD_ENDPOINT = """mutation($url: String!) { createWebhookEndpoint(input: {url: $url}) {
  userErrors { code } } }"""
ADD_KEY = (
    """mutation { createApiKey(input: {name: "extra"}) { apiKey { id } userErrors { code } } }"""
)
REVOKE_KEY = """mutation($id: ID!) { revokeApiKey(input: {id: $id}) { userErrors { code } } }"""


@dataclass
class Caller:
    """One principal, through the cached app and through an uncached twin."""

    name: str
    headers: dict[str, str]
    cached: httpx.AsyncClient
    uncached: httpx.AsyncClient
    unplanned: httpx.AsyncClient  # uncached, and without compiled plans
    documents: list[str]
    hits: CacheHits  # the cached app's


@dataclass
class World:
    db: Database
    receiver: Receiver
    account: Account
    project_ids: list[str]
    admin: Caller
    callers: list[Caller]
    orders: list[str] = field(default_factory=list)
    extra_keys: list[str] = field(default_factory=list)
    hits: int = 0
    misses: int = 0
    # Reads whose answer changed since the same caller last read the same document.
    changed: int = 0
    last: dict[tuple[str, str, str], Any] = field(default_factory=dict)


async def _post(
    client: httpx.AsyncClient, caller: Caller, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=caller.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def read_and_compare(world: World, caller: Caller, query: str) -> None:
    variables = {"id": world.orders[-1]} if "$id" in query and world.orders else {}
    if "$id" in query and not variables:
        return
    served = caller.hits.served
    cached = await _post(caller.cached, caller, query, variables)
    fresh = await _post(caller.uncached, caller, query, variables)
    assert "errors" not in fresh, fresh
    executed = await _post(caller.unplanned, caller, query, variables)
    assert executed == fresh, (caller.name, query, variables)
    assert cached.get("data") == fresh["data"], (caller.name, query, variables)
    assert "cache" not in fresh.get("extensions", {})
    if caller.hits.served > served:
        world.hits += 1
    else:
        world.misses += 1
    key = (caller.name, query, str(variables))
    if key in world.last and world.last[key] != fresh["data"]:
        world.changed += 1
    world.last[key] = fresh["data"]


async def write_order(world: World, rng: random.Random) -> None:
    caller = rng.choice(world.callers)
    grams = rng.randint(1, 800)
    order_input: dict[str, Any] = {"mass": {"amount": str(grams), "unit": "KG"}}
    if rng.random() < 0.4:
        order_input["callbackUrl"] = world.receiver.url
    body = await _post(caller.cached, caller, CREATE, {"input": order_input})
    order = body["data"]["createOrderByMass"]["order"]
    if order is not None and caller.name != "live":
        world.orders.append(order["id"])


async def write_cancel(world: World, rng: random.Random) -> None:
    if world.orders:
        await _post(world.admin.cached, world.admin, CANCEL, {"id": rng.choice(world.orders)})


async def write_batch(world: World, rng: random.Random) -> None:
    batch = {
        "projectId": rng.choice(world.project_ids),
        "vintage": rng.randint(2015, 2024),
        "serialPrefix": f"S-{rng.randrange(10**9)}",
        "quantity": {"amount": str(rng.randint(1, 3)), "unit": "T"},
    }
    await _post(world.admin.cached, world.admin, ADD_BATCH, {"input": batch})


async def write_endpoint(world: World, rng: random.Random) -> None:
    await _post(world.admin.cached, world.admin, ADD_ENDPOINT, {"url": world.receiver.url})


async def write_key(world: World, rng: random.Random) -> None:
    if world.extra_keys and rng.random() < 0.5:
        await _post(world.admin.cached, world.admin, REVOKE_KEY, {"id": world.extra_keys.pop()})
        return
    body = await _post(world.admin.cached, world.admin, ADD_KEY, {})
    world.extra_keys.append(body["data"]["createApiKey"]["apiKey"]["id"])


async def run_fulfilment(world: World, rng: random.Random) -> None:
    await fulfil_pending(world.db, TEST_SECRET)


async def run_relay(world: World, rng: random.Random) -> None:
    await relay_pending(world.db, MemoryBroker())


async def run_webhook_dispatch(world: World, rng: random.Random) -> None:
    world.receiver.statuses = [rng.choice([200, 200, 500, 410]) for _ in range(20)]
    async with http_client() as client:
        await deliver_due(
            world.db, TEST_SECRET, client, allow_private=True, now=utcnow() + timedelta(days=1)
        )


WRITES: list[Callable[[World, random.Random], Coroutine[Any, Any, None]]] = [
    write_order,
    write_order,
    write_cancel,
    write_batch,
    write_endpoint,
    write_key,
    run_fulfilment,
    run_fulfilment,
    run_relay,
    run_relay,
    run_webhook_dispatch,
]


@dataclass
class Apps:
    clients: dict[str, httpx.AsyncClient]
    hits: dict[str, CacheHits]


@pytest.fixture
async def apps(settings: Settings, db: Database) -> AsyncIterator[Apps]:
    # Debug is off on the cached side, so that hits take the fast path (which stands aside in
    # debug); the uncached twins' debug shows their errors, should one ever fail.
    cached = settings.model_copy(update={"allow_private_webhooks": True})
    uncached = cached.model_copy(update={"response_cache": False, "debug": True})
    unplanned = uncached.model_copy(update={"compiled_plans": False})
    apps = Apps({}, {})
    for name, app_settings, host in (
        ("cached", cached, "http://testserver"),
        ("uncached", uncached, "http://testserver"),
        ("cached-other-host", cached, "http://other.example"),
        ("uncached-other-host", uncached, "http://other.example"),
        ("unplanned", unplanned, "http://testserver"),
        ("unplanned-other-host", unplanned, "http://other.example"),
    ):
        app = create_app(app_settings, database=db)
        transport = httpx.ASGITransport(app=app)
        apps.clients[name] = httpx.AsyncClient(transport=transport, base_url=host)
        apps.hits[name] = app.state.cache_hits
    yield apps
    for client in apps.clients.values():
        await client.aclose()


async def test_every_cached_answer_equals_an_uncached_execution_at_that_moment(
    db: Database, account: Account, apps: Apps
) -> None:
    catalog = await seed_catalog(db, account)
    await seed_catalog(db, account, Mode.LIVE)
    subaccount = await make_subaccount(db, account)
    admin_key = (await make_key(db, account, Mode.TEST, admin=True))[1]
    test_key = (await make_key(db, account, Mode.TEST))[1]
    live_key = (await make_key(db, account, Mode.LIVE))[1]
    everything = [ORDERS, PLANNED, ORDER, QUOTE, CATALOG, WEBHOOKS, KEYS]

    def caller(name: str, key: str, documents: list[str], host: str = "", **headers: str) -> Caller:
        return Caller(
            name,
            {"Authorization": f"Bearer {key}", **headers},
            apps.clients[f"cached{host}"],
            apps.clients[f"uncached{host}"],
            apps.clients[f"unplanned{host}"],
            documents,
            apps.hits[f"cached{host}"],
        )

    admin = caller("admin", admin_key, everything)
    callers = [
        admin,
        caller("plain", test_key, [ORDERS, PLANNED, ORDER, QUOTE, CATALOG, VIEWER]),
        caller("other-host", test_key, [ORDERS, PLANNED, ORDER], "-other-host"),
        caller("live", live_key, [ORDERS, QUOTE, CATALOG]),
        caller(
            "subaccount",
            test_key,
            [ORDERS, PLANNED, VIEWER],
            **{"X-Subaccount-Id": gid("Subaccount", subaccount.id)},
        ),
    ]
    with webhook_receiver() as receiver:
        world = World(
            db,
            receiver,
            account,
            [gid("Project", catalog.forest), gid("Project", catalog.dac)],
            admin,
            callers,
        )
        rng = random.Random(SEED)
        for _ in range(STEPS):
            if rng.random() < 0.35:
                await rng.choice(WRITES)(world, rng)
            for _ in range(rng.randint(1, 4)):
                chosen = rng.choice(world.callers)
                await read_and_compare(world, chosen, rng.choice(chosen.documents))
    print(f"hits {world.hits}, misses {world.misses}, changed answers {world.changed}")
    assert world.hits >= 40, "the schedule must exercise the cache"
    assert world.changed >= 20, "the schedule must change what reads see"


# The HTTP side: what is cached, what a hit costs, what the client sees.

NESTED = """{ orders(first: 20) { edges { node { id state createdAt mass { amount unit }
  allocations { mass { amount unit } project { id name } } } } } }"""


def _app_client(settings: Settings, db: Database, **changes: Any) -> httpx.AsyncClient:
    app = create_app(settings.model_copy(update=changes), database=db)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def _ask(http: httpx.AsyncClient, key: str, query: str) -> httpx.Response:
    return await http.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {key}"}
    )


async def test_a_hit_is_charged_like_the_execution_it_replaces(
    settings: Settings, db: Database, account: Account, test_key: str
) -> None:
    await seed_catalog(db, account)
    async with _app_client(
        settings, db, debug=True, rate_limit_per_second=0.001, rate_limit_burst=1_000
    ) as http:
        first, second = await _ask(http, test_key, NESTED), await _ask(http, test_key, NESTED)
    assert [r.json()["extensions"]["cache"] for r in (first, second)] == ["MISS", "HIT"]
    costs = [r.json()["extensions"]["cost"] for r in (first, second)]
    assert costs[0]["requestedQueryCost"] == costs[1]["requestedQueryCost"] > 1
    assert costs[0]["actualQueryCost"] == costs[1]["actualQueryCost"]
    available = [c["throttleStatus"]["currentlyAvailable"] for c in costs]
    actual = costs[0]["actualQueryCost"]
    assert available == [1_000 - actual, 1_000 - 2 * actual]
    assert f"r={available[0]};" in first.headers["RateLimit"]
    assert f"r={available[1]};" in second.headers["RateLimit"]


@pytest.mark.parametrize("debug", [False, True], ids=["fast path", "in the schema"])
async def test_a_hit_reads_only_the_data_versions_after_authentication(
    settings: Settings, db: Database, account: Account, test_key: str, debug: bool
) -> None:
    await seed_catalog(db, account)
    async with _app_client(settings, db, debug=debug) as http:
        await _ask(http, test_key, NESTED)
        with counting_statements(db) as statements:
            hit = await _ask(http, test_key, NESTED)
        assert _hits(http).served == (0 if debug else 1)
    assert hit.json()["extensions"].get("cache", "HIT") == "HIT"
    after_auth = [s for s in statements if "api_key" not in s and "FROM account" not in s]
    assert len(after_auth) == versions_statements(db)  # on SQLite, outside the engine
    assert all("FROM data_version" in statement for statement in after_auth)


async def test_the_cache_is_reported_only_in_debug_and_can_be_turned_off(
    settings: Settings, db: Database, test_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _app_client(settings, db, debug=False) as http:
        for _ in range(2):
            assert "cache" not in (await _ask(http, test_key, NESTED)).json()["extensions"]
    monkeypatch.setenv("CG_RESPONSE_CACHE", "false")
    assert Settings().response_cache is False
    async with _app_client(settings, db, debug=True, response_cache=False) as http:
        for _ in range(2):
            assert "cache" not in (await _ask(http, test_key, NESTED)).json()["extensions"]


async def test_answers_with_errors_and_mutations_are_never_cached(
    settings: Settings, db: Database, test_key: str
) -> None:
    refused = "{ apiKeys(first: 5) { edges { node { id } } } }"  # admin only: FORBIDDEN
    mutation = 'mutation { createApiKey(input: {name: "x"}) { userErrors { code } } }'
    async with _app_client(settings, db, debug=True) as http:
        for _ in range(2):
            body = (await _ask(http, test_key, refused)).json()
            assert body["errors"]
            assert body["extensions"]["cache"] == "MISS"
            assert "cache" not in (await _ask(http, test_key, mutation)).json()["extensions"]


async def test_the_memory_store_keeps_the_most_recently_used_within_its_bytes() -> None:
    store = MemoryResponseStore(max_bytes=8 * 1024)
    for name in "abc":
        await store.put(name, name.encode() * 600)
    assert await store.get("a") is not None  # now the most recently used
    for name in "defghijklmn":
        await store.put(name, name.encode() * 600)
        assert store.size <= store.max_bytes
    assert await store.get("b") is None  # the least recently used went first
    assert await store.get("a") is not None
    for number in range(20):
        await store.put(f"later-{number}", b"x" * 600)
    assert await store.get("a") is None
    assert await store.get("later-19") == b"x" * 600
    await store.put("huge", b"x" * 2 * 1024)  # over an eighth of the store: not kept
    assert await store.get("huge") is None


def _redis_store(url: str, **options: Any) -> RedisResponseStore:
    """A store under a prefix of its own (the Redis is shared), with the default settings."""
    defaults = Settings()
    arguments: dict[str, Any] = {
        "ttl_seconds": 30,
        "max_bytes": defaults.response_cache_max_bytes,
        "timeout_seconds": defaults.redis_timeout_seconds,
        "pause_seconds": defaults.redis_pause_seconds,
        "prefix": f"cg:rc:test-{random.randrange(10**12)}:",
    }
    return RedisResponseStore(url, **{**arguments, **options})


async def _forget_prefix(redis_url: str, prefix: str) -> None:
    import redis.asyncio as redis

    inspector = redis.from_url(redis_url)
    try:
        keys = [key async for key in inspector.scan_iter(match=prefix + "*")]
        if keys:
            await inspector.delete(*keys)
    finally:
        await inspector.aclose()


async def test_the_redis_store_keeps_entries_under_its_prefix_with_a_ttl(redis_url: str) -> None:
    import redis.asyncio as redis

    store = _redis_store(redis_url)
    inspector = redis.from_url(redis_url)
    try:
        await store.put("key", b'{"a":1}')
        assert await store.get("key") == b'{"a":1}'
        assert 0 < await inspector.ttl(f"{store.prefix}key") <= 30
    finally:
        await inspector.aclose()
        await store.close()
        await _forget_prefix(redis_url, store.prefix)


async def test_the_redis_store_keeps_its_entries_within_its_bytes_oldest_out_first(
    redis_url: str,
) -> None:
    import redis.asyncio as redis

    store = _redis_store(redis_url, max_bytes=8 * 1024)
    inspector = redis.from_url(redis_url)
    try:
        for number in range(40):
            await store.put(f"entry-{number}", b"x" * 600)
            assert int(await inspector.get(store.total_key)) <= store.max_bytes
        entries = [key async for key in inspector.scan_iter(match=store.prefix + "entry-*")]
        stored = sum([2 * len(key) + await inspector.strlen(key) for key in entries])
        assert stored <= store.max_bytes
        assert 8 <= len(entries) < 40
        assert await store.get("entry-0") is None  # the oldest went first
        assert await store.get("entry-39") == b"x" * 600
        await store.put("huge", b"x" * 1024)  # over an eighth of the budget: not stored
        assert await store.get("huge") is None
        # Entries deleted behind the store's back (an operator emptying cg:rc:*): the count
        # starts again rather than dropping every new entry.
        await _forget_prefix(redis_url, store.prefix + "entry-")
        await inspector.delete(store.order_key)
        await store.put("after", b"y" * 600)
        assert await store.get("after") == b"y" * 600
        assert int(await inspector.get(store.total_key)) <= store.max_bytes
    finally:
        await inspector.aclose()
        await store.close()
        await _forget_prefix(redis_url, store.prefix)


async def test_an_unreachable_redis_makes_misses_not_failures() -> None:
    store = _redis_store("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        await store.put("k", b"{}")
        assert await store.get("k") is None
    finally:
        await store.close()


async def test_a_hung_redis_costs_one_timeout_then_is_left_alone_until_it_answers_again(
    redis_url: str,
) -> None:
    async with SilentPeer(upstream_of(redis_url)) as peer:
        store = _redis_store(peer.url, timeout_seconds=0.05, pause_seconds=0.5)
        try:
            started = time.monotonic()
            assert await store.get("k") is None  # the peer accepted, and never answered
            assert 0.05 <= time.monotonic() - started < 0.5
            seen = (peer.connections, peer.received)
            assert seen[1] > 0
            started = time.monotonic()
            for _ in range(50):  # the breaker is open: no call reaches the peer
                assert await store.get("k") is None
                await store.put("k", b"{}")
            assert time.monotonic() - started < 0.05
            assert (peer.connections, peer.received) == seen
            await asyncio.sleep(0.55)
            # The pause is over: one call probes (and times out again), the others skip.
            probes = await asyncio.gather(*(store.get("k") for _ in range(20)))
            assert probes == [None] * 20
            assert peer.received > seen[1]
            assert not store.breaker.closed
            peer.silent = False  # Redis answers again: after the pause, the store uses it
            await asyncio.sleep(0.55)
            await store.get("k")  # the probe succeeds
            assert store.breaker.closed
            await store.put("k", b"{}")
            assert await store.get("k") == b"{}"
        finally:
            await store.close()
            await _forget_prefix(redis_url, store.prefix)


async def test_requests_are_answered_uncached_at_full_speed_while_redis_hangs(
    settings: Settings, db: Database, account: Account, test_key: str, redis_url: str
) -> None:
    """The whole server behind a Redis that accepts and never answers (rate limits off, so
    the response cache is its only Redis use here): every request is answered, correctly, and
    only the first waits for a timeout."""
    await seed_catalog(db, account)
    async with (
        SilentPeer(upstream_of(redis_url)) as peer,
        _app_client(
            settings,
            db,
            redis_url=peer.url,
            redis_timeout_seconds=0.05,
            redis_pause_seconds=60,
        ) as hung,
        _app_client(settings, db, response_cache=False) as uncached,
    ):
        expected = (await _ask(uncached, test_key, NESTED)).json()
        await _ask(hung, test_key, "{ __typename }")  # a key's first use is a write
        assert peer.connections >= 1
        seen = peer.received
        started = time.monotonic()
        for _ in range(10):
            answer = await _ask(hung, test_key, NESTED)
            assert answer.status_code == 200
            assert answer.json()["data"] == expected["data"]
        assert peer.received == seen  # the breaker kept every request away from the peer
        assert _hits(hung).served == 0
    print(f"10 requests behind a hung Redis: {time.monotonic() - started:.3f} s")


async def test_an_account_changed_by_another_process_is_never_served_from_an_old_principal(
    settings: Settings, db: Database, account: Account, test_key: str
) -> None:
    """Another process suspends the account (its forget_principals empties only its own
    caches): for up to the principal TTL this process still authenticates from the old
    account row. An answer computed from that row must not be stored under the new data
    versions, or it outlives the TTL: every later request would hit it."""
    ttl = 0.3
    query = "{ viewer { account { name status } } }"
    async with (
        _app_client(settings, db, debug=True, ws_access_check_seconds=ttl) as cached,
        _app_client(settings, db, response_cache=False) as uncached,
    ):
        assert (await _ask(cached, test_key, query)).json()["data"]["viewer"]["account"] == {
            "name": account.name,
            "status": "ACTIVE",
        }
        async with db.transaction() as session:  # as `carbon-gateway accounts suspend` does
            row = await session.get(Account, account.id)
            assert row is not None
            row.status = AccountStatus.SUSPENDED
        await _ask(cached, test_key, query)  # within the TTL: the old principal answers
        await asyncio.sleep(ttl * 2)
        fresh = (await _ask(uncached, test_key, query)).json()["data"]
        later = (await _ask(cached, test_key, query)).json()
    assert fresh["viewer"]["account"]["status"] == "SUSPENDED"
    assert later["data"] == fresh, later["extensions"]["cache"]


async def test_processes_with_other_secrets_sharing_a_redis_never_get_each_others_answers(
    settings: Settings, db: Database, admin_key: str, redis_url: str
) -> None:
    """A rolling rotation of CG_SECRET_KEY: old and new processes share the Redis and the
    database. The signing secret is derived from CG_SECRET_KEY, so the new process must not
    answer the old one's."""
    query = "{ callbackSigningSecret }"
    rotated = settings.model_copy(update={"secret_key": SecretStr("rotated-" + TEST_SECRET)})
    async with (
        _app_client(settings, db, redis_url=redis_url) as old,
        _app_client(rotated, db, redis_url=redis_url) as new,
        _app_client(rotated, db, response_cache=False) as uncached,
    ):
        before = (await _ask(old, admin_key, query)).json()["data"]
        after = (await _ask(new, admin_key, query)).json()["data"]
        fresh = (await _ask(uncached, admin_key, query)).json()["data"]
    assert fresh != before
    assert after == fresh


# The fast path: a hit answered before Strawberry, as the execution it replaces would answer.

CHEAP = "{ orders(first: 20) { edges { node { id allocations { mass { amount } } } } } }"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APQ_GET_HEADERS = ("cache-control", "vary")


def _hits(http: httpx.AsyncClient) -> CacheHits:
    app = http._transport.app  # type: ignore[attr-defined]
    hits: CacheHits = app.state.cache_hits
    return hits


def _comparable(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k != "x-request-id"}
    return response.status_code, response.content, headers


async def test_a_fast_hit_sends_the_bytes_and_headers_an_execution_sends(
    settings: Settings, db: Database, account: Account
) -> None:
    """Two keys of one principal scope share answers but not buckets: the first key's answer
    is executed, the second's is the same request served from the cache, each from a full
    bucket, so the two must agree byte for byte, headers included."""
    await seed_catalog(db, account)
    sha256 = hashlib.sha256(NESTED.encode()).hexdigest()
    by_hash = {"persistedQuery": {"version": 1, "sha256Hash": sha256}}
    variants: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("POST", {"query": NESTED}, {}),
        (
            "POST",
            {"query": CHEAP, "variables": {}},
            {"Accept": "application/graphql-response+json"},
        ),
        ("GET", {"query": "query Named { viewer { mode } }", "operationName": "Named"}, {}),
        ("GET", {"extensions": json.dumps(by_hash)}, {}),
    ]
    async with _app_client(
        settings, db, rate_limit_per_second=0.001, rate_limit_burst=1_000
    ) as http:
        registered = await http.post(
            "/graphql",
            json={"query": NESTED, "extensions": by_hash},
            headers={"Authorization": f"Bearer {(await make_key(db, account))[1]}"},
        )
        assert registered.status_code == 200
        for method, parameters, headers in variants:
            first, second = [(await make_key(db, account))[1] for _ in range(2)]
            for key in (first, second):  # a key's first use is a write (lastUsedAt)
                await _ask(http, key, "{ __typename }")
            served = _hits(http).served
            answers = [
                await http.request(
                    method,
                    "/graphql",
                    **({"json": parameters} if method == "POST" else {"params": parameters}),
                    headers={"Authorization": f"Bearer {key}", **headers},
                )
                for key in (first, second)
            ]
            assert _hits(http).served == served + 1
            executed, hit = (_comparable(answer) for answer in answers)
            assert hit == executed, (method, parameters)
            status, body, sent = hit
            assert status == 200
            cost = orjson.loads(body)["extensions"]["cost"]
            left = 1_000 - 1 - cost["actualQueryCost"]  # the warm-up cost 1
            assert cost["throttleStatus"]["currentlyAvailable"] == left
            assert sent["ratelimit"].startswith(f'"cost";r={left};')
            assert sent["content-type"] == headers.get("Accept", "application/json")
            if method == "GET":
                assert [sent[name] for name in APQ_GET_HEADERS] == [
                    "private",
                    "Authorization, X-API-Key, X-Subaccount-Id",
                ]


async def test_a_fast_hit_is_charged_its_requested_cost_then_settled_to_its_actual(
    settings: Settings, db: Database, account: Account, test_key: str
) -> None:
    await seed_catalog(db, account)
    async with _app_client(
        settings, db, rate_limit_per_second=0.001, rate_limit_burst=1_000
    ) as http:
        answers = [(await _ask(http, test_key, NESTED)).json() for _ in range(3)]
        assert _hits(http).served == 2
    costs = [answer["extensions"]["cost"] for answer in answers]
    assert len({(c["requestedQueryCost"], c["actualQueryCost"]) for c in costs}) == 1
    requested, actual = costs[0]["requestedQueryCost"], costs[0]["actualQueryCost"]
    assert requested > actual  # no orders: the page came back empty, the rest refunded
    available = [c["throttleStatus"]["currentlyAvailable"] for c in costs]
    assert available == [1_000 - actual, 1_000 - 2 * actual, 1_000 - 3 * actual]


async def test_a_bucket_that_cannot_pay_a_hit_gets_the_normal_throttled_answer(
    settings: Settings, db: Database, account: Account
) -> None:
    # CHEAP asks 2 + 20 x 3 = 62 points and, with no orders, uses 2: a bucket of 63 pays it
    # once (63 - 62 + 60 = 61 left), then holds too little to take 62 again.
    (_, first), (_, second) = await make_key(db, account), await make_key(db, account)
    async with _app_client(settings, db, rate_limit_per_second=0.001, rate_limit_burst=63) as http:
        await _ask(http, second, "{ __typename }")  # a key's first use is a write (lastUsedAt)
        executed = await _ask(http, first, CHEAP)
        assert executed.json()["extensions"]["cost"]["requestedQueryCost"] == 62
        throttled = await _ask(http, first, CHEAP)
        assert _hits(http).served == 0
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"]
        assert throttled.headers["RateLimit"].startswith('"cost";r=61;')
        body = throttled.json()
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert body["extensions"]["cost"]["actualQueryCost"] is None
        # The answer was in the cache all along: another key of the scope is served from it.
        assert (await _ask(http, second, CHEAP)).json()["data"] == executed.json()["data"]
        assert _hits(http).served == 1


async def test_fast_hits_never_cross_principals(
    settings: Settings, db: Database, account: Account
) -> None:
    other = await make_account(db, "other", "Other Ltd")
    for owner, mode in ((account, Mode.TEST), (account, Mode.LIVE), (other, Mode.TEST)):
        await seed_catalog(db, owner, mode)
    subaccount = await make_subaccount(db, account)
    principals = {
        "test": ((await make_key(db, account))[1], {}),
        "live": ((await make_key(db, account, Mode.LIVE))[1], {}),
        "admin": ((await make_key(db, account, admin=True))[1], {}),
        "subaccount": (
            (await make_key(db, account))[1],
            {"X-Subaccount-Id": gid("Subaccount", subaccount.id)},
        ),
        "other account": ((await make_key(db, other))[1], {}),
    }
    document = """{ viewer { mode admin subaccount { id } account { slug } }
      bundles(first: 5) { edges { node { id name } } } }"""
    answers: dict[str, Any] = {}
    async with _app_client(settings, db) as http:
        for key, _ in principals.values():  # a key's first use is a write (lastUsedAt)
            await _ask(http, key, "{ __typename }")
        for round_ in range(3):
            for name, (key, headers) in principals.items():
                served = _hits(http).served
                response = await http.post(
                    "/graphql",
                    json={"query": document},
                    headers={"Authorization": f"Bearer {key}", **headers},
                )
                body = response.json()
                assert "errors" not in body, body
                assert _hits(http).served == served + (round_ > 0), (name, round_)
                assert answers.setdefault(name, body["data"]) == body["data"], name
    viewers = {name: data["viewer"] for name, data in answers.items()}
    assert len({orjson.dumps(v) for v in viewers.values()}) == len(principals)
    bundles = {name: orjson.dumps(data["bundles"]) for name, data in answers.items()}
    assert bundles["test"] != bundles["live"] != bundles["other account"] != bundles["test"]


async def test_after_a_write_the_next_read_is_executed_again(
    settings: Settings, db: Database, account: Account, test_key: str
) -> None:
    await seed_catalog(db, account)
    async with _app_client(settings, db) as http:
        before = (await _ask(http, test_key, NESTED)).json()["data"]
        assert (await _ask(http, test_key, NESTED)).json()["data"] == before
        assert _hits(http).served == 1
        created = await http.post(
            "/graphql",
            json={"query": CREATE, "variables": {"input": {"mass": {"amount": "2", "unit": "KG"}}}},
            headers={"Authorization": f"Bearer {test_key}"},
        )
        order = created.json()["data"]["createOrderByMass"]["order"]["id"]
        after = (await _ask(http, test_key, NESTED)).json()["data"]
        assert _hits(http).served == 1  # a miss, executed
        assert [edge["node"]["id"] for edge in after["orders"]["edges"]] == [order]
        assert (await _ask(http, test_key, NESTED)).json()["data"] == after
        assert _hits(http).served == 2


async def test_debug_mode_and_unusual_requests_take_the_normal_path(
    settings: Settings, db: Database, test_key: str
) -> None:
    auth = {"Authorization": f"Bearer {test_key}"}
    async with _app_client(settings, db, debug=True) as http:
        for _ in range(2):
            assert (await _ask(http, test_key, VIEWER)).json()["extensions"]["cache"]
        assert _hits(http).served == 0
    async with _app_client(settings, db) as http:
        for _ in range(2):  # cached, then a hit: the unusual requests below could hit it
            await _ask(http, test_key, VIEWER)
        assert _hits(http).served == 1
        unusual: list[Any] = [
            [{"query": VIEWER}],  # a batch
            {"query": VIEWER, "extensions": {"tracing": True}},
            {"query": VIEWER, "variables": "not an object"},
            {"query": VIEWER, "extensions": 0},  # a 400, as `"extensions": 1` is
            {"query": "query A { viewer { mode } } query B { viewer { admin } }"},
            {"query": "{ viewer { mode "},
        ]
        for _ in range(2):
            for body in unusual:
                await http.post("/graphql", json=body, headers=auth)
        assert _hits(http).served == 1
        odd = await http.post("/graphql", json={"query": VIEWER, "extensions": 0}, headers=auth)
        assert odd.status_code == 400
        # Variables nested deeper than orjson encodes (undeclared, so the schema lets them be):
        # answered, not cached.
        deep: Any = []
        for _ in range(300):
            deep = [deep]
        nested = await http.post(
            "/graphql", json={"query": VIEWER, "variables": {"unused": deep}}, headers=auth
        )
        assert nested.status_code == 200, nested.text
        for name in ("variables", "extensions"):
            params = {"query": VIEWER, name: "null"}
            assert (await http.get("/graphql", params=params, headers=auth)).status_code == 400
        assert _hits(http).served == 1


async def test_fast_hits_keep_each_host_its_own_certificate_links(
    settings: Settings, db: Database, account: Account, test_key: str
) -> None:
    """The base URL certificate links are built from is worked out once per Host, never
    shared between hosts: each host is answered its own links, from the cache too."""
    await seed_catalog(db, account)
    await place_order(db, account, 1_000)
    await fulfil(db, settings)
    query = "{ orders(first: 5) { edges { node { certificate { publicUrl } } } } }"
    links: dict[str, set[str]] = {}
    async with _app_client(settings, db) as http:
        for round_ in range(3):
            for host in ("testserver", "other.example", "testserver:8443"):
                served = _hits(http).served
                response = await http.post(
                    "/graphql",
                    json={"query": query},
                    headers={"Authorization": f"Bearer {test_key}", "Host": host},
                )
                edges = response.json()["data"]["orders"]["edges"]
                urls = {edge["node"]["certificate"]["publicUrl"] for edge in edges}
                assert _hits(http).served == served + (round_ > 0), (host, round_)
                assert links.setdefault(host, urls) == urls
    for host, urls in links.items():
        assert urls
        assert all(url.startswith(f"http://{host}/certificates/") for url in urls), urls


async def test_a_key_follows_the_principal_rows_even_for_a_principal_seen_before(
    settings: Settings, db: Database, account: Account
) -> None:
    """What of a principal goes into keys is worked out once per principal object: another
    object (the principal cache's next one, after the TTL) with another account row gets
    other keys, and the same one the same key."""
    cache = create_response_cache(settings, db.engine, export_sdl())
    assert cache is not None
    try:
        first = principal_for(account, Mode.TEST, admin=False)
        changed = dataclasses.replace(
            first, account=first.account.model_copy(update={"name": "Renamed Ltd"})
        )
        query, url = "{ viewer { account { name } } }", "http://testserver/"
        key = await cache.key_for(first, url, query, None, None)
        assert await cache.key_for(first, url, query, None, None) == key
        assert await cache.key_for(changed, url, query, None, None) != key
        assert await cache.key_for(first, url, query, None, {"a": 1}) != key
        assert await cache.key_for(first, url, query + " ", None, None) != key
        assert await cache.key_for(first, url, query, None, None) == key
    finally:
        await cache.close()


async def test_one_principal_gets_one_key_whatever_order_its_rows_fields_were_loaded_in(
    settings: Settings, db: Database, account: Account
) -> None:
    """Two processes load the same account row with its fields in different orders (found by
    the two-server Redis test, one run in two on PostgreSQL): their keys must still agree, or
    a shared Redis cache is shared by chance."""
    cache = create_response_cache(settings, db.engine, export_sdl())
    assert cache is not None
    try:
        first = principal_for(account, Mode.TEST, admin=False)
        fields = first.account.model_dump()
        reordered = dataclasses.replace(
            first, account=Account.model_validate(dict(reversed(fields.items())))
        )
        assert list(reordered.account.model_dump()) != list(fields)
        query, url = "{ viewer { account { name } } }", "http://testserver/"
        assert await cache.key_for(reordered, url, query, None, None) == await cache.key_for(
            first, url, query, None, None
        )
    finally:
        await cache.close()
