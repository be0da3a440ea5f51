"""The response cache: results of HTTP queries, keyed on the data versions they depend on.

What is cached: the `data` of a query over HTTP that ran without errors. Mutations,
subscriptions and WebSocket operations are never cached, nor an answer with errors.

The key: everything the result depends on — the principal's scope (account, mode, subaccount,
admin role; the account and subaccount rows as the principal holds them, since principals are
cached for a few seconds and `viewer` answers from them), the document's SHA-256,
`operationName`, the variables, the public base URL certificate links are built from
(CG_PUBLIC_URL, else the request's host), whether introspection is on, the schema, the
database and the secret key — and the current versions of the data scopes the principal may
read (app/data_versions.py: its account in its mode, its account row, the scope every
unreadable write advances, and the database's epoch).

Why it can never be stale: every committing write advances the versions of the scopes it
wrote in the same transaction, and every cached read first reads those versions from the
database (one statement), so a write committed before the read always changes the key, in
whatever process it ran. An entry is only ever looked up under the versions it was computed
at or after; old entries are never read again and age out (LRU in memory, a TTL in Redis).

No result read at execution time depends on the clock (no field computes an expiry from
`now`; timestamps are written, not derived), so the clock is not part of the key. A field
that ever does must make its operations uncacheable (`UNCACHEABLE_ROOT_FIELDS`).

A hit still costs what the operation costs: the cost limiter (app/graphql/cost.py) runs
before this extension and charges the requested cost; an entry keeps the actual cost of its
data, computed when it was executed, which the limiter refunds from exactly as it would
after an execution (without walking the data again). `extensions.cache` says HIT or MISS
when CG_DEBUG is on.
"""

import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import nullcontext
from typing import Any, Protocol

import orjson
from graphql import FieldNode, OperationDefinitionNode, OperationType, get_operation_ast
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.extensions import SchemaExtension

from app.accounts.service import Principal
from app.config import Settings
from app.data_versions import read_scopes, read_versions
from app.graphql.cost import PricedResult, actual_cost
from app.graphql.extensions import debug_enabled
from app.graphql.reads import RequestReads

log = logging.getLogger(__name__)

REDIS_PREFIX = "cg:rc:"
REDIS_TIMEOUT_SECONDS = 1.0
# Root query fields whose answers depend on something no data version covers (the clock, an
# outside service). None today: see the module docstring.
UNCACHEABLE_ROOT_FIELDS: frozenset[str] = frozenset()


class ResponseStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def close(self) -> None: ...


class MemoryResponseStore:
    """The most recently used entries, up to `max_bytes` of keys and values together."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[str, bytes] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    async def put(self, key: str, value: bytes) -> None:
        cost = len(key) + len(value)
        if cost > self.max_bytes // 8:
            return  # one answer may not push out most of the others
        previous = self._entries.pop(key, None)
        if previous is not None:
            self.size -= len(key) + len(previous)
        self._entries[key] = value
        self.size += cost
        while self.size > self.max_bytes:
            old_key, old_value = self._entries.popitem(last=False)
            self.size -= len(old_key) + len(old_value)

    async def close(self) -> None:
        self._entries.clear()
        self.size = 0


class RedisResponseStore:
    """Entries shared by every process using the Redis, each kept for `ttl_seconds`. A Redis
    that fails makes a miss (logged), never a failed request: the database has the answer."""

    def __init__(self, url: str, ttl_seconds: int, prefix: str = REDIS_PREFIX) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, socket_timeout=REDIS_TIMEOUT_SECONDS)
        self._errors = (redis.RedisError, OSError)
        self.ttl_seconds = ttl_seconds
        self.prefix = prefix

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._redis.get(self.prefix + key)
        except self._errors as error:
            log.warning("response cache: Redis get failed, answering uncached: %r", error)
            return None
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes) -> None:
        try:
            await self._redis.set(self.prefix + key, value, ex=self.ttl_seconds)
        except self._errors as error:
            log.warning("response cache: Redis set failed: %r", error)

    async def close(self) -> None:
        await self._redis.aclose()


class ResponseCache:
    """Keys and the store for one process's endpoint; `namespace` names the schema, the
    database and the secret key (answers derived from it, such as callbackSigningSecret,
    differ between processes of one Redis while CG_SECRET_KEY is being rotated)."""

    def __init__(
        self, engine: AsyncEngine, store: ResponseStore, schema_sdl: str, secret_key: str
    ) -> None:
        self.engine = engine
        self.store = store
        database = engine.url.render_as_string(hide_password=True)
        material = f"{schema_sdl}\0{database}\0{secret_key}".encode()
        self.namespace = hashlib.sha256(material).hexdigest()

    async def key_for(
        self,
        principal: Principal,
        settings: Settings,
        request_base_url: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        session: AsyncSession | None = None,
    ) -> str:
        """The key of this request's answer at the data versions current now (one statement,
        in the request's read session when it has one)."""
        versions = await read_versions(
            session or self.engine, read_scopes(principal.account_id, principal.mode)
        )
        material = orjson.dumps(
            [
                self.namespace,
                # The rows themselves, not their ids: a principal is cached for a few
                # seconds (app/accounts/principals.py), and an answer computed from an older
                # account row must not be stored under the versions that row's change advanced.
                principal.account.model_dump(mode="json"),
                principal.mode.value,
                principal.subaccount.model_dump(mode="json") if principal.subaccount else None,
                principal.is_admin,
                settings.public_url or request_base_url,
                settings.introspection,
                hashlib.sha256(query.encode()).hexdigest(),
                operation_name,
                variables or {},
                versions,
            ],
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(material).hexdigest()

    async def close(self) -> None:
        await self.store.close()


def create_response_cache(
    settings: Settings, engine: AsyncEngine, schema_sdl: str
) -> ResponseCache | None:
    """None when CG_RESPONSE_CACHE is off; Redis when CG_REDIS_URL is set, else memory."""
    if not settings.response_cache:
        return None
    store: ResponseStore
    if settings.redis_url:
        store = RedisResponseStore(settings.redis_url, settings.response_cache_ttl_seconds)
    else:
        store = MemoryResponseStore(settings.response_cache_max_bytes)
    return ResponseCache(engine, store, schema_sdl, settings.secret_key.get_secret_value())


def _cacheable(operation: OperationDefinitionNode | None) -> bool:
    if operation is None or operation.operation is not OperationType.QUERY:
        return False
    return not any(
        isinstance(selection, FieldNode) and selection.name.value in UNCACHEABLE_ROOT_FIELDS
        for selection in operation.selection_set.selections
    )


class ResponseCaching(SchemaExtension):
    """Serves a query from the cache, or stores its error-free answer. Listed after the cost
    limiter, so a hit is charged like the execution it replaces."""

    outcome: str | None = None

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        cache: ResponseCache | None = getattr(context, "response_cache", None)
        principal = getattr(context, "principal", None)
        request = getattr(context, "request", None)
        if cache is None or principal is None or request is None or execution.query is None:
            yield
            return
        document = execution.graphql_document
        operation = get_operation_ast(document, execution.operation_name) if document else None
        if not _cacheable(operation):
            yield
            return
        # The versions are read before any data, through the request's shared read session
        # (OperationReads, listed before this extension, has shared it): an answer is stored
        # under versions no newer than the data it was computed from.
        reads: RequestReads | None = getattr(context, "reads", None)
        async with reads.session() if reads is not None else nullcontext() as session:
            key = await cache.key_for(
                principal,
                context.settings,
                str(request.base_url),
                execution.query,
                execution.operation_name,
                execution.variables,
                session,
            )
        cached = await cache.store.get(key)
        if cached is not None:
            entry = orjson.loads(cached)
            execution.result = PricedResult(entry["data"], entry["cost"])
            self.outcome = "HIT"
            yield
            return
        self.outcome = "MISS"
        yield
        result = execution.result
        if result is not None and not result.errors and result.data is not None:
            entry = {"data": result.data, "cost": actual_cost(execution)}
            await cache.store.put(key, orjson.dumps(entry))

    def get_results(self) -> dict[str, Any]:
        if self.outcome is None or not debug_enabled(self.execution_context.context):
            return {}
        return {"cache": self.outcome}
