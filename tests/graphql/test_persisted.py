"""Persisted operations over HTTP: Apollo's APQ protocol, on the memory and the Redis store,
and the trusted-documents mode."""

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.db import Database
from app.graphql.persisted import (
    ManifestError,
    MemoryDocumentStore,
    RedisDocumentStore,
    TrustedDocuments,
)
from app.main import create_app

VIEWER = "query Viewer { viewer { mode } }"
CREATE_SUBACCOUNT = (
    'mutation Create { createSubaccount(input: {name: "North"}) { subaccount { name } } }'
)


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def persisted(document: str) -> dict[str, object]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}}


class Client:
    """Sends operations the way Apollo's persisted-query link does."""

    def __init__(self, http: httpx.AsyncClient, key: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {key}"}

    async def post(self, body: dict[str, object]) -> httpx.Response:
        return await self.http.post("/graphql", json=body, headers=self.headers)

    async def get(self, **params: object) -> httpx.Response:
        encoded = {
            name: value if isinstance(value, str) else json.dumps(value)
            for name, value in params.items()
        }
        return await self.http.get(
            "/graphql", params=encoded, headers={**self.headers, "Accept": "*/*"}
        )


async def _serve(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http
    await app.state.persisted_operations.close()


@pytest.fixture(params=["memory", "redis"])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    if request.param == "memory":
        return settings
    return settings.model_copy(update={"redis_url": request.getfixturevalue("redis_url")})


@pytest.fixture
async def apq(store_settings: Settings, db: Database, test_key: str) -> AsyncIterator[Client]:
    async for http in _serve(store_settings, db):
        yield Client(http, test_key)


def unique(document: str) -> str:
    """A document no other test (nor an earlier run, in Redis) has registered."""
    return f"{document} # {uuid.uuid4().hex}"


async def test_an_unknown_hash_is_persisted_query_not_found(apq: Client) -> None:
    response = await apq.post({"extensions": persisted(unique(VIEWER))})
    assert response.status_code == 404
    assert response.headers["cache-control"] == "no-store"
    [error] = response.json()["errors"]
    assert error == {
        "message": "PersistedQueryNotFound",
        "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
    }


async def test_query_and_hash_register_the_document_and_the_hash_alone_then_runs_it(
    apq: Client,
) -> None:
    document = unique(VIEWER)
    registered = await apq.post({"query": document, "extensions": persisted(document)})
    assert registered.status_code == 200
    assert registered.json()["data"] == {"viewer": {"mode": "TEST"}}
    hit = await apq.post({"extensions": persisted(document), "operationName": "Viewer"})
    assert hit.status_code == 200
    assert hit.json()["data"] == {"viewer": {"mode": "TEST"}}
    assert hit.json()["extensions"]["cost"]["requestedQueryCost"] == 1


async def test_a_hash_that_is_not_the_querys_is_refused_and_registers_nothing(
    apq: Client,
) -> None:
    document = unique(VIEWER)
    other = unique(VIEWER)
    mismatch = await apq.post({"query": document, "extensions": persisted(other)})
    assert mismatch.status_code == 400
    [error] = mismatch.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "not the SHA-256 of the query" in error["message"]
    assert (await apq.post({"extensions": persisted(other)})).status_code == 404


async def test_malformed_persisted_query_extensions_are_400(apq: Client) -> None:
    for extension in (
        {"version": 2, "sha256Hash": sha256(VIEWER)},
        {"version": 1, "sha256Hash": "not-a-hash"},
        "a string",
    ):
        response = await apq.post({"extensions": {"persistedQuery": extension}})
        assert response.status_code == 400, extension
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_a_persisted_query_runs_over_get_so_a_cdn_can_cache_it(apq: Client) -> None:
    document = unique(
        "query Mode($first: Int) { viewer { mode } orders(first: $first) { totalCount } }"
    )
    assert (await apq.get(extensions=persisted(document))).status_code == 404
    assert (
        await apq.post({"query": document, "extensions": persisted(document)})
    ).status_code == 200
    hit = await apq.get(extensions=persisted(document), variables={"first": 5})
    assert hit.status_code == 200, hit.text
    assert hit.json()["data"] == {"viewer": {"mode": "TEST"}, "orders": {"totalCount": 0}}
    # the GET URL carries only the hash and the variables
    assert "query=" not in str(hit.request.url)
    # one tenant's answer: only the asking browser may cache it, a CDN keys it by credentials
    assert hit.headers["cache-control"] == "private"
    assert hit.headers["vary"] == "Authorization, X-API-Key, X-Subaccount-Id"


async def test_a_persisted_mutation_never_runs_over_get(apq: Client) -> None:
    document = unique(CREATE_SUBACCOUNT)
    registered = await apq.post({"query": document, "extensions": persisted(document)})
    assert registered.status_code == 200
    refused = await apq.get(extensions=persisted(document))
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST"


async def test_registered_documents_are_shared_by_every_process_through_redis(
    settings: Settings, db: Database, test_key: str, redis_url: str
) -> None:
    shared = settings.model_copy(update={"redis_url": redis_url})
    document = unique(VIEWER)
    async for http in _serve(shared, db):
        registering = Client(http, test_key)
        assert (
            await registering.post({"query": document, "extensions": persisted(document)})
        ).status_code == 200
    async for http in _serve(shared, db):  # another app instance: nothing in its memory
        hit = await Client(http, test_key).post({"extensions": persisted(document)})
        assert hit.status_code == 200
        assert hit.json()["data"] == {"viewer": {"mode": "TEST"}}


async def test_the_memory_store_forgets_the_least_recently_used_documents_first() -> None:
    store = MemoryDocumentStore(max_documents=2, max_characters=100, share_per_owner=1)
    await store.put("a", "{ a }")
    await store.put("b", "{ b }")
    assert await store.get("a") == "{ a }"  # now "b" is the least recently used
    await store.put("c", "{ c }")
    assert (await store.get("b"), len(store)) == (None, 2)
    await store.put("big", "x" * 98)  # over the total size: the others go
    assert (await store.get("a"), await store.get("c"), len(store)) == (None, None, 1)


async def test_one_keys_registrations_never_push_out_another_keys_in_memory() -> None:
    store = MemoryDocumentStore(max_documents=20, max_characters=1_000)  # 2 documents a key
    await store.put("mine", "{ viewer { mode } }", owner="key-a")
    for n in range(50):
        await store.put(f"junk-{n}", f"{{ junk{n} }}", owner="key-b")
    assert await store.get("mine") == "{ viewer { mode } }"
    # key-b keeps its 2 most recent; its older ones went, nobody else's
    assert [await store.get(f"junk-{n}") for n in (47, 48, 49)] == [
        None,
        "{ junk48 }",
        "{ junk49 }",
    ]
    assert len(store) == 3
    assert await store.put("huge", "x" * 101, owner="key-c") is None  # over a key's 100
    assert await store.get("huge") is None


async def test_redis_keeps_each_keys_newest_registrations_and_never_drops_another_keys(
    redis_url: str,
) -> None:
    store = RedisDocumentStore(redis_url, prefix=f"cg:test:{uuid.uuid4().hex}:", max_per_owner=2)
    try:
        await store.put("mine", "{ viewer { mode } }", owner="key-a")
        for n in range(5):
            await store.put(f"junk-{n}", f"{{ junk{n} }}", owner="key-b")
        assert await store.get("mine") == "{ viewer { mode } }"
        kept = [await store.get(f"junk-{n}") for n in range(5)]
        assert kept == [None, None, None, "{ junk3 }", "{ junk4 }"]
        await store.put("mine", "{ viewer { mode } }", owner="key-b")  # known: still key-a's
        assert await store.get("junk-3") == "{ junk3 }"
    finally:
        await store._redis.delete(*await store._redis.keys(store.prefix + "*"))
        await store.close()


async def test_the_redis_store_keeps_a_document_for_its_ttl(redis_url: str) -> None:
    store = RedisDocumentStore(redis_url, prefix=f"cg:test:{uuid.uuid4().hex}:", ttl_seconds=60)
    try:
        await store.put(sha256(VIEWER), VIEWER)
        assert await store.get(sha256(VIEWER)) == VIEWER
        ttl = await store._redis.ttl(store.prefix + sha256(VIEWER))
        assert 0 < ttl <= 60
    finally:
        await store.close()


async def test_registration_stores_only_documents_that_are_small_parse_and_validate(
    apq: Client,
) -> None:
    huge = "#" + "A" * 70_000 + "\n" + unique(VIEWER)  # valid, but over 65,536 characters
    too_large = await apq.post({"query": huge, "extensions": persisted(huge)})
    assert too_large.status_code == 400
    [error] = too_large.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "over 65,536 characters" in error["message"]
    unparsable = unique("{ viewer ")
    invalid = unique("{ secretThing }")
    for document in (unparsable, invalid):
        refused = await apq.post({"query": document, "extensions": persisted(document)})
        assert refused.json()["errors"], document
    for document in (huge, unparsable, invalid):
        assert (await apq.post({"extensions": persisted(document)})).status_code == 404


async def test_a_throttled_registration_is_rate_limited_and_stores_nothing(
    store_settings: Settings, db: Database, test_key: str
) -> None:
    # A 3-point bucket restored at a point every 100 seconds.
    update = {"rate_limit_per_second": 0.01, "rate_limit_burst": 3}
    app = create_app(store_settings.model_copy(update=update), database=db)
    store = app.state.persisted_operations.store
    document = unique("query Spend { viewer { mode account { slug } } }")  # costs 2
    huge = "#" + "A" * 70_000 + "\n" + unique(VIEWER)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        throttled = Client(http, test_key)
        assert (await throttled.post({"query": "{ viewer { account { slug } } }"})).is_success
        refused = await throttled.post({"query": document, "extensions": persisted(document)})
        assert refused.status_code == 429  # 2 points asked, 1 left
        assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert (await throttled.post({"query": VIEWER})).status_code == 200  # the last point
        empty = await throttled.post({"query": huge, "extensions": persisted(huge)})
        assert empty.status_code == 429  # too large, but first of all out of points
        assert empty.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert await store.get(sha256(document)) is None
    assert await store.get(sha256(huge)) is None
    await app.state.persisted_operations.close()
    await app.state.rate_limiter.close()


# Trusted documents


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(
        json.dumps(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [
                    {"id": sha256(VIEWER), "body": VIEWER, "name": "Viewer", "type": "query"},
                    {
                        "id": "ab" * 32,  # an id that is not the body's hash: asked by either
                        "body": CREATE_SUBACCOUNT,
                        "name": "Create",
                        "type": "mutation",
                    },
                ],
            }
        )
    )
    return path


@pytest.fixture
async def trusted(
    store_settings: Settings, db: Database, admin_key: str, manifest: Path
) -> AsyncIterator[Client]:
    locked = store_settings.model_copy(update={"trusted_documents": manifest})
    async for http in _serve(locked, db):
        yield Client(http, admin_key)


async def test_trusted_mode_runs_the_manifests_operations_by_hash_or_exact_text(
    trusted: Client,
) -> None:
    by_hash = await trusted.post({"extensions": persisted(VIEWER)})
    assert by_hash.json()["data"] == {"viewer": {"mode": "TEST"}}
    by_get = await trusted.get(extensions=persisted(VIEWER))
    assert by_get.json()["data"] == {"viewer": {"mode": "TEST"}}
    by_text = await trusted.post({"query": VIEWER})
    assert by_text.json()["data"] == {"viewer": {"mode": "TEST"}}
    mutation = await trusted.post(
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256(CREATE_SUBACCOUNT)}}}
    )
    assert mutation.json()["data"]["createSubaccount"]["subaccount"] == {"name": "North"}


async def test_trusted_mode_refuses_any_other_operation_and_registers_nothing(
    trusted: Client,
) -> None:
    other = "{ viewer { mode account { slug } } }"
    refusals = [
        await trusted.post({"query": other}),
        await trusted.post({"query": other, "extensions": persisted(other)}),
        await trusted.post({"extensions": persisted(other)}),
        await trusted.get(query=other),
        await trusted.post({"query": VIEWER + " "}),  # not the exact text
    ]
    for refused in refusals:
        assert refused.status_code == 403
        [error] = refused.json()["errors"]
        assert error["extensions"]["code"] == "OPERATION_NOT_TRUSTED"
        assert "trusted-documents manifest" in error["message"]


def test_a_plain_hash_to_document_map_is_a_manifest_too() -> None:
    documents = TrustedDocuments.from_manifest({sha256(VIEWER): VIEWER})
    assert documents.trusts(VIEWER)
    assert documents.document_for(sha256(VIEWER)) == VIEWER
    assert not documents.trusts("{ viewer { mode } }")


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        (
            {"format": "apollo-persisted-query-manifest", "version": 2, "operations": []},
            "version 1",
        ),
        (
            {"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id": 1}]},
            "string id and body",
        ),
        ({"0" * 64: VIEWER}, "sha256 of their document"),
        (
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [{"id": "viewer-query", "body": VIEWER}],
            },
            "'viewer-query' is not a SHA-256",
        ),
        (["not", "a", "map"], "expected an Apollo persisted-query manifest"),
    ],
)
def test_a_manifest_we_cannot_trust_stops_the_server_with_the_reason(
    manifest: object, problem: str
) -> None:
    with pytest.raises(ManifestError, match=problem):
        TrustedDocuments.from_manifest(manifest)
