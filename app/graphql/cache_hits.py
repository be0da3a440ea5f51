"""Cache hits over HTTP, answered before Strawberry runs: the stored bytes, charged as executed.

A query whose answer is in the response cache (app/graphql/response_cache.py) needs none of
Strawberry's pipeline: its document parsed, validated, within the limits and error-free when
it was stored, and the key names every setting that could change that. So `CacheHits` reads
the raw request, asks `ResponseCache.key_for` for its key (one statement, the data versions:
on SQLite at once on the loop's thread, else in the request's read session), and on a hit
sends the stored `data` bytes with the cost extension and RateLimit headers the normal path
would send. The bucket is charged as the
limiter charges an execution: the requested cost taken (a bucket that cannot pay it leaves
the request to the normal path, whose answer is the THROTTLED one), then settled to the
actual cost.

Anything else goes the normal way, with the key already read handed over in the context, so
a miss reads the versions once: batches, errors, mutations, subscriptions, an APQ
registration (text and hash: the normal path stores it), a request this module does not
read exactly as Strawberry would (unknown extensions, odd JSON types), and debug mode (whose
answers say `extensions.cache`).
"""

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import DocumentNode, GraphQLError, get_operation_ast
from starlette.requests import Request
from starlette.responses import Response
from strawberry.http import GraphQLRequestData

from app.accounts.rate_limits import RateLimiter, ThrottleStatus
from app.accounts.service import Principal
from app.graphql.cost import cost_extension, settle_cost
from app.graphql.extensions import MAX_DOCUMENT_CHARACTERS, CachedParsing
from app.graphql.persisted import PersistedOperations, PersistedQueryError
from app.graphql.reads import RequestReads
from app.graphql.response_cache import (
    MAX_KEPT_DOCUMENT_CHARACTERS,
    MAX_KEPT_DOCUMENTS,
    CachedAnswer,
    ResponseCache,
    cacheable,
)
from app.graphql.schema import MAX_TOKENS, PARSE_CACHE_SIZE
from app.memo import Memo

# The schema's own parse cache (Strawberry shares one per size), called as the schema calls
# it (with its token limit), so a document is parsed once for both paths.
parse_document = CachedParsing(maxsize=PARSE_CACHE_SIZE).cached_parse_document
PERSISTED_QUERY = "persistedQuery"
MAX_KEPT_BASE_URLS = 64
MAX_KEPT_BUCKETS = 10_000  # rate-limit bucket names (a key's id as text), one per API key
# The last few answers hit, decoded and ready to send: 32 of at most 256 KiB each, so at
# worst 16 MiB beyond the store's own budget (the stored bytes, once evicted, and the body);
# larger ones are decoded on every hit.
MAX_KEPT_ANSWERS = 32
MAX_KEPT_ANSWER_BYTES = 256 * 1024


@dataclass(frozen=True)
class AskedQuery:
    """A cacheable query as the request asks it: what its key is made of."""

    query: str
    operation_name: str | None
    variables: dict[str, Any] | None


@dataclass
class CacheLookup:
    """What looking a request up found: the answer to send, with the key's bucket after it
    (None when rate limiting is off); or no answer, and the key when it was read (handed to
    the normal path, which then stores its answer under it)."""

    key: str | None = None
    answer: Response | None = None
    throttle: ThrottleStatus | None = None
    bucket: str | None = None  # the key's rate-limit bucket, with an answer


class CacheHits:
    def __init__(
        self, cache: ResponseCache, persisted: PersistedOperations, rate_limiter: RateLimiter
    ) -> None:
        self.cache = cache
        self.persisted = persisted
        self.rate_limiter = rate_limiter
        self.served = 0  # answers sent from here, for tests and operators to see
        # Worked out once, not per request (bench/cache_hit.py measures a hit's CPU).
        self._base_urls: Memo[tuple[Any, ...], str] = Memo(MAX_KEPT_BASE_URLS)
        self._verdicts: Memo[tuple[str, str | None], bool] = Memo(MAX_KEPT_DOCUMENTS)
        self._answers: Memo[str, tuple[bytes, CachedAnswer, bytes]] = Memo(MAX_KEPT_ANSWERS)
        self._buckets: Memo[uuid.UUID, str] = Memo(MAX_KEPT_BUCKETS)

    async def look_up(
        self, request: Request, principal: Principal, reads: RequestReads
    ) -> CacheLookup:
        """The cached answer (200, application/json, the cost in `extensions`) with the key's
        bucket charged, or what the normal path needs to answer instead."""
        asked = await self._asked(request)
        if asked is None:
            return CacheLookup()
        reads.share()  # a query: on a miss its data is read in the same session, after
        key = await self.cache.key_for(
            principal,
            self.cache.public_url or self._base_url(request),
            asked.query,
            asked.operation_name,
            asked.variables,
            reads,
        )
        if key is None:
            return CacheLookup()
        stored = await self.cache.store.get(key)
        if stored is None:
            return CacheLookup(key)
        answer, unthrottled_body = self._decoded(key, stored)
        bucket = self._buckets.get(principal.api_key_id) or self._buckets.keep(
            principal.api_key_id, str(principal.api_key_id)
        )
        throttle = await self.rate_limiter.take(bucket, answer.requested_cost)
        if throttle is not None and throttle.refused:
            return CacheLookup(key)  # the normal path answers THROTTLED
        settled = await settle_cost(
            self.rate_limiter, bucket, answer.requested_cost, answer.actual_cost
        )
        throttle = settled or throttle
        await reads.close()
        self.served += 1
        body = unthrottled_body if throttle is None else _body(answer, throttle)
        response = Response(body, media_type="application/json")
        return CacheLookup(key, response, throttle, bucket)

    def _decoded(self, key: str, stored: bytes) -> tuple[CachedAnswer, bytes]:
        """The stored answer, and the body it is sent as when no bucket is charged (rate
        limiting off): decoded and built once per entry while it is among the last few hit
        (the memory store hands out the very same bytes; Redis equal ones)."""
        kept = self._answers.get(key)
        if kept is not None and (kept[0] is stored or kept[0] == stored):
            return kept[1], kept[2]
        answer = CachedAnswer.decode(stored)
        body = _body(answer, None)
        if len(stored) <= MAX_KEPT_ANSWER_BYTES:
            self._answers.keep(key, (stored, answer, body))
        return answer, body

    def _base_url(self, request: Request) -> str:
        """`str(request.base_url)`, worked out once per (scheme, server, root path, Host):
        Starlette builds and parses a whole URL for it on every call."""
        scope = request.scope
        host = next((value for name, value in scope["headers"] if name == b"host"), None)
        root_path = scope.get("app_root_path", scope.get("root_path", ""))
        asked = (scope.get("scheme"), scope.get("server"), root_path, host)
        base_url = self._base_urls.get(asked)
        if base_url is None:  # Host is the client's to choose: the memo is bounded
            base_url = self._base_urls.keep(asked, str(request.base_url))
        return base_url

    def _cacheable(self, query: str, operation_name: str | None) -> bool:
        """Whether the document parses within the token limit and its operation is a
        cacheable query: decided once per document and operation name."""
        asked = (query, operation_name)
        verdict = self._verdicts.get(asked)
        if verdict is None:
            document = _document(query)
            verdict = document is not None and cacheable(
                get_operation_ast(document, operation_name)
            )
            if len(query) <= MAX_KEPT_DOCUMENT_CHARACTERS:
                self._verdicts.keep(asked, verdict)
        return verdict

    async def _asked(self, request: Request) -> AskedQuery | None:
        """The request's query, if it is one single cacheable query read exactly as the normal
        path reads it; else None."""
        parameters = await _parameters(request)
        if parameters is None:
            return None
        query = parameters.get("query")
        operation_name = parameters.get("operationName")
        variables = parameters.get("variables")
        extensions = parameters.get("extensions")
        # Strictly what Strawberry accepts (`"extensions": 0` is a 400 there, not "none").
        if not (
            isinstance(query, str | None)
            and isinstance(operation_name, str | None)
            and isinstance(variables, dict | None)
            and isinstance(extensions, dict | None)
        ):
            return None
        extensions = extensions or {}
        if not set(extensions) <= {PERSISTED_QUERY}:
            return None
        if PERSISTED_QUERY in extensions and query is not None:
            return None  # an APQ registration: the normal path registers it when it runs
        try:
            resolved = await self.persisted.resolve(
                GraphQLRequestData(query, variables, operation_name, extensions or None)
            )
        except PersistedQueryError:
            return None  # unknown hash, untrusted text: the normal path says so
        if resolved.query is None or len(resolved.query) > MAX_DOCUMENT_CHARACTERS:
            return None
        if not self._cacheable(resolved.query, operation_name):
            return None
        return AskedQuery(resolved.query, operation_name, variables)


async def _parameters(request: Request) -> dict[str, Any] | None:
    """The GraphQL-over-HTTP parameters of a POST body or GET query string, JSON decoded."""
    if request.method == "POST":
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return None
        return body if isinstance(body, dict) else None  # a batch is no cacheable query
    parameters: dict[str, Any] = dict(request.query_params)
    for name in ("variables", "extensions"):
        if name in parameters:
            try:
                parameters[name] = orjson.loads(parameters[name])
            except orjson.JSONDecodeError:
                return None
            if not isinstance(parameters[name], dict):
                return None  # `variables=null` in a URL is a 400 there, not "none"
    return parameters


def _body(answer: CachedAnswer, throttle: ThrottleStatus | None) -> bytes:
    """Byte for byte what Strawberry's orjson encoding of {"data", "extensions"} gives."""
    cost = cost_extension(answer.requested_cost, answer.actual_cost, throttle)
    return b'{"data":%b,"extensions":%b}' % (answer.data, orjson.dumps({"cost": cost}))


def _document(query: str) -> DocumentNode | None:
    try:
        document: DocumentNode = parse_document(query, max_tokens=MAX_TOKENS)
    except GraphQLError:
        return None
    return document
