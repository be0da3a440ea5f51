"""The response cache: results of HTTP queries, keyed on the data versions they depend on.

What is cached: the `data` of a query over HTTP that ran without errors. Mutations,
subscriptions and WebSocket operations are never cached, nor an answer with errors.

The key: everything the result depends on — the principal's scope (account, mode, subaccount,
admin role; the account and subaccount rows as the principal holds them, since principals are
cached for a few seconds and `viewer` answers from them), the document's SHA-256,
`operationName`, the variables, the public base URL certificate links are built from
(CG_PUBLIC_URL, else the request's host), the settings that change validation or results
(introspection, the trusted-documents manifest, the cost limits, the secret certificate ids
derive from), the schema and the database — and the current versions of the data scopes the
principal may read (app/data_versions.py: its account in its mode, its account row, the scope
every unreadable write advances, and the database's epoch). `ResponseCache.key_for` is the one
place that decides it, for the HTTP fast path (app/graphql/cache_hits.py) and this extension.

Why it can never be stale: every committing write advances the versions of the scopes it
wrote in the same transaction, and every cached read first reads those versions from the
database (one statement), so a write committed before the read always changes the key, in
whatever process it ran. An entry is only ever looked up under the versions it was computed
at or after; old entries are never read again and age out (LRU in memory; in Redis a TTL, and
the oldest first beyond the byte budget).

No result read at execution time depends on the clock (no field computes an expiry from
`now`; timestamps are written, not derived), so the clock is not part of the key. A field
that ever does must make its operations uncacheable (`UNCACHEABLE_ROOT_FIELDS`).

A hit still costs what the operation costs: an entry keeps the requested and the actual cost
of its data, computed when it was executed. Here the cost limiter (app/graphql/cost.py) runs
before this extension and charges the requested cost, then refunds down to the entry's
actual cost exactly as it would after an execution (without walking the data again); the
fast path charges the same two figures. `extensions.cache` says HIT or MISS when CG_DEBUG is
on (the fast path stands aside then).
"""

import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson
from graphql import FieldNode, OperationDefinitionNode, OperationType, get_operation_ast
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.extensions import SchemaExtension

from app.accounts.service import Principal
from app.bounded_redis import BoundedCalls, RedisUnavailable, bounded_client
from app.config import Settings
from app.data_versions import SQLiteVersionReader, read_scopes, read_versions
from app.graphql.cost import PricedResult, actual_cost, requested_cost
from app.graphql.extensions import debug_enabled
from app.graphql.reads import RequestReads
from app.memo import Memo

log = logging.getLogger(__name__)

REDIS_PREFIX = "cg:rc:"
# Part of every key: a change of the entries' encoding (CachedAnswer) makes the old ones unread.
ENTRY_FORMAT = 2
# Root query fields whose answers depend on something no data version covers (the clock, an
# outside service). None today: see the module docstring.
UNCACHEABLE_ROOT_FIELDS: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CachedAnswer:
    """One stored answer: its costs as charged when it was executed, and its `data` encoded
    as it was sent, so that a hit sends those very bytes."""

    requested_cost: int
    actual_cost: int
    data: bytes

    def encode(self) -> bytes:
        return b"%d %d\n" % (self.requested_cost, self.actual_cost) + self.data

    @classmethod
    def decode(cls, value: bytes) -> "CachedAnswer":
        costs, _, data = value.partition(b"\n")
        requested, actual = costs.split()
        return cls(int(requested), int(actual), data)


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


# Stores an entry and keeps the entries' total within a budget of bytes, dropping the oldest
# first. KEYS: the entry, the list of entries in the order stored ("<cost> <key>" each), the
# total of their costs; ARGV: value, TTL, budget, cost (at most an eighth of the budget). A cost
# is counted until its entry leaves the list, even when its TTL has removed it already: the
# total only ever overstates what is stored, so the budget holds. A list emptied while the
# total still exceeds the budget (its keys deleted by hand) starts the count again.
_PUT_SCRIPT = """
local total = redis.call('INCRBY', KEYS[3], ARGV[4])
while total > tonumber(ARGV[3]) do
  local oldest = redis.call('LPOP', KEYS[2])
  if not oldest then
    redis.call('SET', KEYS[3], ARGV[4])
    break
  end
  local space = string.find(oldest, ' ', 1, true)
  redis.call('UNLINK', string.sub(oldest, space + 1))
  total = redis.call('DECRBY', KEYS[3], tonumber(string.sub(oldest, 1, space - 1)))
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[4] .. ' ' .. KEYS[1])
return 1
"""


class RedisResponseStore:
    """Entries shared by every process using the Redis, each kept for `ttl_seconds`, together
    within `max_bytes` (keys and values, the oldest dropped first) and each within an eighth of
    it, as in memory. Every call is bounded by `timeout_seconds`; a Redis that fails or times
    out makes a miss (logged), never a failed request — the database has the answer — and
    then is left alone for `pause_seconds` (CircuitBreaker): meanwhile requests are answered
    uncached. The script names keys it was not passed (the oldest entries): one Redis, not a
    cluster, as for the rest of CG_REDIS_URL's uses."""

    def __init__(
        self,
        url: str,
        ttl_seconds: int,
        max_bytes: int,
        *,
        timeout_seconds: float,
        pause_seconds: float,
        prefix: str = REDIS_PREFIX,
    ) -> None:
        self._redis = bounded_client(url, timeout_seconds)
        self._put = self._redis.register_script(_PUT_SCRIPT)
        self._calls = BoundedCalls(
            "response cache", timeout_seconds=timeout_seconds, pause_seconds=pause_seconds
        )
        self.breaker = self._calls.breaker
        self.timeout_seconds = timeout_seconds
        self.ttl_seconds = ttl_seconds
        self.max_bytes = max_bytes
        self.prefix = prefix
        self.order_key, self.total_key = prefix + ".order", prefix + ".bytes"

    async def get(self, key: str) -> bytes | None:
        value = await self._call("get", lambda: self._redis.get(self.prefix + key))
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes) -> None:
        entry = self.prefix + key
        cost = 2 * len(entry) + len(value)  # the entry's key and value, and its place in order
        if cost > self.max_bytes // 8:
            return  # one answer may not push out most of the others
        keys = [entry, self.order_key, self.total_key]
        args: list[bytes | int] = [value, self.ttl_seconds, self.max_bytes, cost]
        await self._call("put", lambda: self._put(keys=keys, args=args))

    async def _call(self, name: str, command: Callable[[], Awaitable[Any]]) -> Any:
        """`command`'s answer, or None when Redis fails, takes too long or is paused: a miss,
        and the request is answered uncached."""
        try:
            return await self._calls.run(name, command)
        except RedisUnavailable:
            return None

    async def close(self) -> None:
        await self._redis.aclose()


# Principals whose key part is kept (each holds its account and subaccount rows alive, a few
# KB): emptied when full, so beyond this many active keys each is worked out again now and then.
MAX_KEPT_PRINCIPALS = 2_000
# Document digests kept: a thousand documents of at most 4,096 characters (longer ones are
# hashed each time), 4 MB at worst.
MAX_KEPT_DOCUMENTS = 1_000
MAX_KEPT_DOCUMENT_CHARACTERS = 4_096


@dataclass(frozen=True)
class _ScopedPrincipal:
    principal: Principal
    scopes: tuple[str, ...]
    digest: str  # of the principal's rows and role, as keys include them


class ResponseCache:
    """Keys and the store for one process's endpoint; `namespace` names the schema, the
    database and the settings that change what an operation answers."""

    def __init__(
        self, engine: AsyncEngine, store: ResponseStore, schema_sdl: str, settings: Settings
    ) -> None:
        self.engine = engine
        self.store = store
        self.public_url = settings.public_url
        self._sqlite_reader: SQLiteVersionReader | Literal[False] | None = None  # False: none
        # Worked out once, not per request (bench/cache_hit.py measures a hit's CPU).
        self._principals: Memo[int, _ScopedPrincipal] = Memo(MAX_KEPT_PRINCIPALS)
        self._documents: Memo[str, str] = Memo(MAX_KEPT_DOCUMENTS)
        database = engine.url.render_as_string(hide_password=True)
        self.namespace = hashlib.sha256(
            orjson.dumps([ENTRY_FORMAT, schema_sdl, database, settings_fingerprint(settings)])
        ).hexdigest()

    async def key_for(
        self,
        principal: Principal,
        request_base_url: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        reads: RequestReads | None = None,
    ) -> str | None:
        """The key of this request's answer at the data versions current now (one statement:
        on SQLite at once, on the loop's thread; else in the request's read session when it
        has one). `operation_name` is the one the request sent, not one inferred from the
        document. None when the variables cannot be keyed (nested deeper than JSON encoding
        goes, which the schema refuses anyway): such a request is not cached."""
        try:
            encoded_variables = (
                orjson.dumps(variables, option=orjson.OPT_SORT_KEYS) if variables else b"{}"
            )
        except orjson.JSONEncodeError:
            return None
        scoped = self._scoped(principal)
        versions = self._sqlite_versions(scoped.scopes)
        if versions is None and reads is None:
            versions = await read_versions(self.engine, scoped.scopes)
        elif versions is None and reads is not None:
            async with reads.session() as session:
                versions = await read_versions(session, scoped.scopes)
        material = orjson.dumps(
            [
                self.namespace,
                scoped.digest,
                self.public_url or request_base_url,
                self._document_digest(query),
                operation_name,
                hashlib.sha256(encoded_variables).hexdigest(),
                versions,
            ]
        )
        return hashlib.sha256(material).hexdigest()

    def _scoped(self, principal: Principal) -> "_ScopedPrincipal":
        """What of the principal goes into keys, worked out once per principal object (the
        principal cache hands out the same one for seconds; it is frozen and its rows are
        detached copies no one changes)."""
        kept = self._principals.get(id(principal))
        if kept is not None and kept.principal is principal:
            return kept
        digest = hashlib.sha256(
            orjson.dumps(
                [
                    # The rows themselves, not their ids: a principal is cached for a few
                    # seconds (app/accounts/principals.py), and an answer computed from an
                    # older account row must not be stored under the versions that row's
                    # change advanced.
                    principal.account.model_dump(mode="json"),
                    principal.mode.value,
                    principal.subaccount.model_dump(mode="json") if principal.subaccount else None,
                    principal.is_admin,
                ],
                # A row's fields come in the order they were loaded, which differs between
                # processes (and statements): sorted, every process keys one principal alike.
                option=orjson.OPT_SORT_KEYS,
            )
        ).hexdigest()
        scoped = _ScopedPrincipal(
            principal, read_scopes(principal.account_id, principal.mode), digest
        )
        return self._principals.keep(id(principal), scoped)

    def _document_digest(self, query: str) -> str:
        digest = self._documents.get(query)
        if digest is None:
            digest = hashlib.sha256(query.encode()).hexdigest()
            if len(query) <= MAX_KEPT_DOCUMENT_CHARACTERS:
                self._documents.keep(query, digest)
        return digest

    def _sqlite_versions(self, scopes: tuple[str, ...]) -> tuple[int, ...] | None:
        """On SQLite, the versions read at once on the loop's thread (SQLiteVersionReader),
        opened at the first read, when the server has migrated the database; else None."""
        if self._sqlite_reader is None:
            self._sqlite_reader = SQLiteVersionReader.for_engine(self.engine) or False
        return self._sqlite_reader.read(scopes) if self._sqlite_reader else None

    async def close(self) -> None:
        if self._sqlite_reader:
            self._sqlite_reader.close()
        await self.store.close()


def settings_fingerprint(settings: Settings) -> str:
    """What of the settings changes whether an operation runs or what it answers: processes
    sharing a Redis store share entries only when this is the same."""
    manifest = settings.trusted_documents.read_bytes() if settings.trusted_documents else b""
    rate_limited = settings.rate_limit_per_second > 0
    return hashlib.sha256(
        orjson.dumps(
            [
                settings.introspection,
                hashlib.sha256(manifest).hexdigest(),
                settings.max_query_cost,
                settings.rate_limit_burst if rate_limited else None,
                # Certificate ids derive from the secret: hashed, never kept.
                hashlib.sha256(settings.secret_key.get_secret_value().encode()).hexdigest(),
            ]
        )
    ).hexdigest()


def create_response_cache(
    settings: Settings, engine: AsyncEngine, schema_sdl: str
) -> ResponseCache | None:
    """None when CG_RESPONSE_CACHE is off; Redis when CG_REDIS_URL is set, else memory."""
    if not settings.response_cache:
        return None
    store: ResponseStore
    if settings.redis_url:
        store = RedisResponseStore(
            settings.redis_url,
            settings.response_cache_ttl_seconds,
            settings.response_cache_max_bytes,
            timeout_seconds=settings.redis_timeout_seconds,
            pause_seconds=settings.redis_pause_seconds,
        )
    else:
        store = MemoryResponseStore(settings.response_cache_max_bytes)
    return ResponseCache(engine, store, schema_sdl, settings)


def cacheable(operation: OperationDefinitionNode | None) -> bool:
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
        if not cacheable(operation):
            yield
            return
        # The HTTP fast path has read the versions already when it looked this request up;
        # else they are read here, before any data, through the request's shared read session
        # (OperationReads, listed before this extension, has shared it): either way an answer
        # is stored under versions no newer than the data it was computed from.
        key: str | None = getattr(context, "response_cache_key", None)
        if key is None:
            key = await cache.key_for(
                principal,
                str(request.base_url),
                execution.query,
                getattr(execution, "_provided_operation_name", None),
                execution.variables,
                getattr(context, "reads", None),
            )
        if key is None:
            yield
            return
        cached = await cache.store.get(key)
        if cached is not None:
            answer = CachedAnswer.decode(cached)
            execution.result = PricedResult(orjson.loads(answer.data), answer.actual_cost)
            self.outcome = "HIT"
            yield
            return
        self.outcome = "MISS"
        yield
        result = execution.result
        if result is not None and not result.errors and result.data is not None:
            requested, actual = requested_cost(execution), actual_cost(execution)
            if requested is not None and actual is not None:
                answer = CachedAnswer(requested, actual, orjson.dumps(result.data))
                await cache.store.put(key, answer.encode())

    def get_results(self) -> dict[str, Any]:
        if self.outcome is None or not debug_enabled(self.execution_context.context):
            return {}
        return {"cache": self.outcome}
