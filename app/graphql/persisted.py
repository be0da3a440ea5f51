"""Persisted operations: Apollo's automatic persisted queries (APQ) and trusted documents.

APQ (https://www.apollographql.com/docs/apollo-server/performance/apq): a client sends
`extensions.persistedQuery = {"version": 1, "sha256Hash": <hex>}` without the query text; an
unknown hash answers `PersistedQueryNotFound` (code PERSISTED_QUERY_NOT_FOUND) and the client
sends the text and the hash together. That registers it only once the hash is checked, the
text is at most MAX_DOCUMENT_CHARACTERS, and the operation has been let through to execution:
it parsed, validated and its cost was paid (PersistedQueryRegistration), so neither junk nor
a throttled request stores anything. Registered documents live in Redis when CG_REDIS_URL is
set (every process shares them), else in a bounded in-memory LRU where each API key holds at
most a tenth of the room, so one key's registrations cannot push out everyone else's.

Trusted documents (CG_TRUSTED_DOCUMENTS=manifest.json): only the operations of the manifest
run, asked by hash or by their exact text; anything else is OPERATION_NOT_TRUSTED and APQ
registration is off. The manifest is Apollo's persisted-query manifest
(`{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id", "body",
"name", "type"}]}`) or a plain `{"<sha256 hex>": "<document>"}` map.
"""

import contextlib
import dataclasses
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.http import GraphQLRequestData

from app.bounded_redis import BoundedCalls, RedisUnavailable, bounded_client
from app.errors import ErrorCode
from app.graphql.extensions import MAX_DOCUMENT_CHARACTERS

APQ_VERSION = 1
APOLLO_MANIFEST_FORMAT = "apollo-persisted-query-manifest"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Bounds of the in-memory store: entries and total characters (documents are at most a body).
MEMORY_MAX_DOCUMENTS = 1_000
MEMORY_MAX_CHARACTERS = 16 * 1024 * 1024
# The share of either bound one API key's registrations may hold in memory.
MEMORY_SHARE_PER_KEY = 10
# A registered document outlives any deployment's clients by far; a miss only costs a retry.
REDIS_TTL_SECONDS = 7 * 24 * 3600
# One API key's registrations kept in Redis: its newest, at most this many (6.4 MiB at most).
REDIS_MAX_DOCUMENTS_PER_KEY = 100


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class PersistedQueryError(Exception):
    """A persisted-operation request that cannot run: HTTP status, error code and message."""

    def __init__(self, status: int, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_trusted() -> PersistedQueryError:
    return PersistedQueryError(
        403,
        ErrorCode.OPERATION_NOT_TRUSTED,
        "Only the operations of this server's trusted-documents manifest run.",
    )


class DocumentStore(Protocol):
    async def get(self, sha256_hash: str) -> str | None: ...

    async def put(self, sha256_hash: str, document: str, owner: str = "") -> None:
        """Register a document; `owner` is the API key registering it."""
        ...

    async def close(self) -> None: ...


class MemoryDocumentStore:
    """Least recently used documents first out, beyond a count or a total size; and each owner
    (API key) holds at most 1/MEMORY_SHARE_PER_KEY of either, beyond which its own least
    recently used registrations go first, never another key's."""

    def __init__(
        self,
        max_documents: int = MEMORY_MAX_DOCUMENTS,
        max_characters: int = MEMORY_MAX_CHARACTERS,
        share_per_owner: int = MEMORY_SHARE_PER_KEY,
    ) -> None:
        self.max_documents = max_documents
        self.max_characters = max_characters
        self.owner_max_documents = max(1, max_documents // share_per_owner)
        self.owner_max_characters = max_characters // share_per_owner
        self._documents: OrderedDict[str, tuple[str, str]] = OrderedDict()  # hash: (text, owner)
        self._characters = 0
        self._by_owner: dict[str, tuple[int, int]] = {}  # owner: (documents, characters)

    async def get(self, sha256_hash: str) -> str | None:
        entry = self._documents.get(sha256_hash)
        if entry is None:
            return None
        self._documents.move_to_end(sha256_hash)
        return entry[0]

    async def put(self, sha256_hash: str, document: str, owner: str = "") -> None:
        if sha256_hash in self._documents:
            self._documents.move_to_end(sha256_hash)
            return
        if len(document) > self.owner_max_characters:
            return  # more than one key may hold: never stored (a miss only costs a retry)
        self._add(sha256_hash, document, owner)
        while self._over_owner_share(owner):
            self._evict(next(h for h, (_, o) in self._documents.items() if o == owner))
        while self._documents and (
            len(self._documents) > self.max_documents or self._characters > self.max_characters
        ):
            self._evict(next(iter(self._documents)))

    def _over_owner_share(self, owner: str) -> bool:
        documents, characters = self._by_owner.get(owner, (0, 0))
        return documents > self.owner_max_documents or characters > self.owner_max_characters

    def _add(self, sha256_hash: str, document: str, owner: str) -> None:
        self._documents[sha256_hash] = (document, owner)
        self._characters += len(document)
        documents, characters = self._by_owner.get(owner, (0, 0))
        self._by_owner[owner] = (documents + 1, characters + len(document))

    def _evict(self, sha256_hash: str) -> None:
        document, owner = self._documents.pop(sha256_hash)
        self._characters -= len(document)
        documents, characters = self._by_owner[owner]
        if documents == 1:
            del self._by_owner[owner]
        else:
            self._by_owner[owner] = (documents - 1, characters - len(document))

    def __len__(self) -> int:
        return len(self._documents)

    async def close(self) -> None:
        self._documents.clear()
        self._by_owner.clear()
        self._characters = 0


# Registers a document once (the first registrant owns it) and keeps each owner's newest
# `limit` registrations, dropping the oldest beyond them; a known document gets a fresh TTL.
# KEYS: the document, the owner's set; ARGV: text, TTL, limit, the documents' key prefix, hash.
_REGISTER_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  local clock = redis.call('TIME')
  redis.call('ZADD', KEYS[2], tonumber(clock[1]) + tonumber(clock[2]) / 1000000, ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
  if over > 0 then
    local evicted = redis.call('ZPOPMIN', KEYS[2], over)
    for i = 1, #evicted, 2 do redis.call('DEL', ARGV[4] .. evicted[i]) end
  end
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"""


class RedisDocumentStore:
    """Documents for `ttl_seconds`, each API key's newest `max_per_owner` registrations at
    most (its older ones are dropped first, never another key's), so one key holds at most
    max_per_owner x MAX_DOCUMENT_CHARACTERS of Redis. Calls are bounded
    (app/bounded_redis.py): while Redis fails, a hash is not found — the client sends its
    document again, which executes as text — and a registration is not stored."""

    def __init__(
        self,
        url: str,
        prefix: str = "cg:apq:",
        ttl_seconds: int = REDIS_TTL_SECONDS,
        max_per_owner: int = REDIS_MAX_DOCUMENTS_PER_KEY,
        *,
        timeout_seconds: float = 0.1,
        pause_seconds: float = 5.0,
    ) -> None:
        self._redis = bounded_client(url, timeout_seconds, decode_responses=True)
        self._register = self._redis.register_script(_REGISTER_SCRIPT)
        self._calls = BoundedCalls(
            "persisted documents", timeout_seconds=timeout_seconds, pause_seconds=pause_seconds
        )
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.max_per_owner = max_per_owner

    async def get(self, sha256_hash: str) -> str | None:
        try:
            document = await self._calls.run(
                "get", lambda: self._redis.get(self.prefix + sha256_hash)
            )
        except RedisUnavailable:
            return None
        return document if isinstance(document, str) else None

    async def put(self, sha256_hash: str, document: str, owner: str = "") -> None:
        with contextlib.suppress(RedisUnavailable):
            await self._calls.run(
                "register",
                lambda: self._register(
                    keys=[self.prefix + sha256_hash, f"{self.prefix}by-key:{owner}"],
                    args=[document, self.ttl_seconds, self.max_per_owner, self.prefix, sha256_hash],
                ),
            )

    async def close(self) -> None:
        await self._redis.aclose()


class ManifestError(ValueError):
    """CG_TRUSTED_DOCUMENTS names a file that is not a manifest we can read."""


@dataclasses.dataclass(frozen=True)
class TrustedDocuments:
    """The manifest's documents by sha256 of their text, and by manifest id where that differs."""

    by_hash: Mapping[str, str]
    by_id: Mapping[str, str]

    @classmethod
    def load(cls, path: Path) -> "TrustedDocuments":
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ManifestError(f"CG_TRUSTED_DOCUMENTS: cannot read {path}: {error}") from error
        return cls.from_manifest(manifest, str(path))

    @classmethod
    def from_manifest(cls, manifest: object, source: str = "manifest") -> "TrustedDocuments":
        pairs: list[tuple[str, str]]
        if isinstance(manifest, dict) and manifest.get("format") == APOLLO_MANIFEST_FORMAT:
            if manifest.get("version") != 1 or not isinstance(manifest.get("operations"), list):
                raise ManifestError(f"{source}: an Apollo manifest needs version 1 and operations")
            operations = manifest["operations"]
            if not all(
                isinstance(o, dict)
                and isinstance(o.get("id"), str)
                and isinstance(o.get("body"), str)
                for o in operations
            ):
                raise ManifestError(f"{source}: every operation needs a string id and body")
            pairs = [(o["id"], o["body"]) for o in operations]
            # Clients ask by sha256Hash, which must be 64 hex digits: another id is unreachable.
            unreachable = [key for key, _ in pairs if not SHA256_HEX.fullmatch(key.lower())]
            if unreachable:
                raise ManifestError(
                    f"{source}: operation id {unreachable[0]!r} is not a SHA-256 (64 hexadecimal "
                    "digits), so no client could ask for it"
                )
        elif isinstance(manifest, dict) and all(
            isinstance(key, str) and isinstance(value, str) for key, value in manifest.items()
        ):
            pairs = list(manifest.items())
            mismatched = [key for key, body in pairs if key.lower() != document_hash(body)]
            if mismatched:
                raise ManifestError(
                    f"{source}: keys must be the sha256 of their document: {mismatched[0]}"
                )
        else:
            raise ManifestError(
                f"{source}: expected an Apollo persisted-query manifest or a {{hash: body}} map"
            )
        return cls(
            by_hash={document_hash(body): body for _, body in pairs},
            by_id={key.lower(): body for key, body in pairs},
        )

    def document_for(self, sha256_hash: str) -> str | None:
        return self.by_hash.get(sha256_hash) or self.by_id.get(sha256_hash)

    def trusts(self, document: str) -> bool:
        return document_hash(document) in self.by_hash


class PersistedOperations:
    """Turns the request's persisted-query extension into the query text Strawberry runs."""

    def __init__(self, store: DocumentStore, trusted: TrustedDocuments | None = None) -> None:
        self.store = store
        self.trusted = trusted

    async def resolve(self, request: GraphQLRequestData) -> GraphQLRequestData:
        persisted = (request.extensions or {}).get("persistedQuery")
        if persisted is None:
            if (
                self.trusted is not None
                and request.query is not None
                and not self.trusted.trusts(request.query)
            ):
                raise not_trusted()
            return request
        sha256_hash = self._hash_of(persisted)
        if request.query is not None:
            if document_hash(request.query) != sha256_hash:
                raise PersistedQueryError(
                    400,
                    ErrorCode.BAD_REQUEST,
                    "extensions.persistedQuery.sha256Hash is not the SHA-256 of the query.",
                )
            if self.trusted is not None and not self.trusted.trusts(request.query):
                raise not_trusted()
            if len(request.query) > MAX_DOCUMENT_CHARACTERS:
                raise PersistedQueryError(
                    400,
                    ErrorCode.BAD_REQUEST,
                    f"The document is over {MAX_DOCUMENT_CHARACTERS:,} characters: send large "
                    "inputs as variables.",
                )
            # Registered by PersistedQueryRegistration, once the operation reaches execution.
            return request
        if self.trusted is not None:
            document = self.trusted.document_for(sha256_hash)
            if document is None:
                raise not_trusted()
        else:
            document = await self.store.get(sha256_hash)
            if document is None:
                # The message is the one Apollo's clients look for, beside the code.
                raise PersistedQueryError(
                    404, ErrorCode.PERSISTED_QUERY_NOT_FOUND, "PersistedQueryNotFound"
                )
        return dataclasses.replace(request, query=document)

    @staticmethod
    def _hash_of(persisted: Any) -> str:
        if not isinstance(persisted, dict) or persisted.get("version") != APQ_VERSION:
            raise PersistedQueryError(
                400,
                ErrorCode.BAD_REQUEST,
                "extensions.persistedQuery must be {version: 1, sha256Hash: <hex>}.",
            )
        sha256_hash = persisted.get("sha256Hash")
        if not isinstance(sha256_hash, str) or not SHA256_HEX.fullmatch(sha256_hash.lower()):
            raise PersistedQueryError(
                400,
                ErrorCode.BAD_REQUEST,
                "extensions.persistedQuery.sha256Hash must be 64 hexadecimal digits.",
            )
        return sha256_hash.lower()

    async def close(self) -> None:
        await self.store.close()


def create_persisted_operations(
    redis_url: str | None,
    trusted_documents: Path | None,
    *,
    redis_timeout_seconds: float = 0.1,
    redis_pause_seconds: float = 5.0,
) -> PersistedOperations:
    trusted = TrustedDocuments.load(trusted_documents) if trusted_documents else None
    store: DocumentStore = (
        RedisDocumentStore(
            redis_url, timeout_seconds=redis_timeout_seconds, pause_seconds=redis_pause_seconds
        )
        if redis_url
        else MemoryDocumentStore()
    )
    return PersistedOperations(store, trusted)


class TrustedDocumentsGuard(SchemaExtension):
    """In trusted mode, text that is not in the manifest never executes, however it reached the
    schema. HTTP (PersistedOperations.resolve) and WebSocket (refusal_before_parsing) check
    before parsing, so that validation never answers an unlisted document; this is the last
    line behind both."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        persisted = getattr(execution.context, "persisted_operations", None)
        trusted = getattr(persisted, "trusted", None)
        if trusted is not None and not trusted.trusts(execution.query or ""):
            error = not_trusted()
            raise GraphQLError(error.message, extensions={"code": error.code.value})
        yield


class PersistedQueryRegistration(SchemaExtension):
    """Stores an APQ registration (text and hash together) once the operation reaches
    execution: parsed, validated, within the limits and paid for by the key's bucket. Placed
    after the cost limiter, so a refused or throttled request registers nothing."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        persisted = (execution.operation_extensions or {}).get("persistedQuery")
        operations = getattr(execution.context, "persisted_operations", None)
        query = execution.query
        if (
            isinstance(operations, PersistedOperations)
            and operations.trusted is None
            and isinstance(persisted, dict)
            and query
            and len(query) <= MAX_DOCUMENT_CHARACTERS
            and str(persisted.get("sha256Hash", "")).lower() == document_hash(query)
        ):
            owner = getattr(execution.context, "rate_limit_key", None) or ""
            await operations.store.put(document_hash(query), query, owner)
        yield
