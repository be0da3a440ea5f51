"""PrincipalCache: a known key's requests read no key row, and revocation still bites within
CG_WS_ACCESS_CHECK_SECONDS over HTTP, on both databases."""

import asyncio
import time
import uuid

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import select

from app.accounts import service
from app.accounts.models import Account, AccountStatus, ApiKey, Mode
from app.accounts.principals import PrincipalCache, forget_principals
from app.accounts.service import Principal
from app.config import Settings
from app.db import Database, utcnow
from app.graphql.http import GraphQLEndpoint
from app.main import create_app
from tests.conftest import GraphQLClient, counting_statements, make_account, make_key
from tests.offsets_fixtures import principal_for

VIEWER = "{ viewer { mode } }"


def _key_reads(statements: list[str]) -> int:
    return sum("FROM api_key" in statement for statement in statements)


ACCESS_CHECK_SECONDS = 0.5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"ws_access_check_seconds": ACCESS_CHECK_SECONDS})


async def test_a_known_key_reads_no_key_row_until_the_access_check_interval_passes(
    db: Database, client: httpx.AsyncClient
) -> None:
    account = await make_account(db)
    _, key = await make_key(db, account)
    gql = GraphQLClient(client, key)
    await gql.execute(VIEWER)  # authenticates, records the key's use
    await asyncio.sleep(ACCESS_CHECK_SECONDS)
    with counting_statements(db) as first:
        assert (await gql.execute(VIEWER))["data"]["viewer"]["mode"] == "TEST"
    with counting_statements(db) as second:
        started = time.monotonic()
        assert (await gql.execute(VIEWER))["data"]["viewer"]["mode"] == "TEST"
    if time.monotonic() - started < ACCESS_CHECK_SECONDS:  # a slow machine may have waited out
        # (each request also reads the response cache's data versions: not the key's row)
        assert (_key_reads(first), _key_reads(second)) == (1, 0)


async def test_a_key_revoked_by_another_process_is_refused_within_the_access_check_interval(
    db: Database, client: httpx.AsyncClient
) -> None:
    account = await make_account(db)
    api_key, key = await make_key(db, account)
    gql = GraphQLClient(client, key)
    assert (await gql.execute(VIEWER))["data"]["viewer"]["mode"] == "TEST"  # now cached
    # Revoked the way another server process or the CLI would: nothing here is told.
    async with db.transaction() as session:
        await session.exec(
            update(ApiKey).where(ApiKey.id == api_key.id).values(revoked_at=utcnow())  # type: ignore[call-overload]
        )
    await asyncio.sleep(ACCESS_CHECK_SECONDS)
    response = await gql.post(VIEWER)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_revocation_and_suspension_in_this_process_bite_at_once(
    db: Database, client: httpx.AsyncClient
) -> None:
    account = await make_account(db)
    admin = principal_for(account, admin=True)
    (revoked, revoked_key), (_, kept_key) = await make_key(db, account), await make_key(db, account)
    for key in (revoked_key, kept_key):
        assert (await GraphQLClient(client, key).execute(VIEWER))["data"]
    async with db.transaction() as session:
        await service.revoke_api_key(session, admin, revoked.id)
    assert (await GraphQLClient(client, revoked_key).post(VIEWER)).status_code == 401
    async with db.transaction() as session:
        await service.set_account_status(session, account.slug, AccountStatus.SUSPENDED)
    status = "{ viewer { account { status } } }"
    body = await GraphQLClient(client, kept_key).execute(status)
    assert body["data"]["viewer"]["account"]["status"] == "SUSPENDED"


def test_good_keys_are_kept_in_a_bounded_lru_per_scope() -> None:
    cache = PrincipalCache(seconds=60, maxsize=2)
    account = Account(name="Acme", slug="acme")
    principals = [principal_for(account, Mode.TEST) for _ in range(3)]
    for index, principal in enumerate(principals):
        cache.put(f"cg_test_{index}", None, principal)
    assert len(cache) == 2
    assert cache.get("cg_test_0", None) is None  # the least recently used went first
    assert cache.get("cg_test_2", None) is principals[2]
    assert cache.get("cg_test_2", uuid.uuid4()) is None  # another scope is another entry
    forget_principals()
    assert cache.get("cg_test_2", None) is None
    assert len(PrincipalCache(seconds=0)) == 0


async def test_a_flood_of_bad_keys_is_refused_every_time_and_stores_nothing(
    db: Database, settings: Settings
) -> None:
    account = await make_account(db)
    _, key = await make_key(db, account)
    app = create_app(settings, database=db)
    endpoint = next(
        route.endpoint
        for route in app.routes
        if isinstance(getattr(route, "endpoint", None), GraphQLEndpoint)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await GraphQLClient(http, key).execute(VIEWER))["data"]
        for index in range(50):
            bad = GraphQLClient(http, f"cg_test_{index:064d}")
            assert (await bad.post(VIEWER)).status_code == 401
    assert len(endpoint.principals) == 1


async def test_a_key_in_steady_use_is_authenticated_again_in_the_background() -> None:
    cache = PrincipalCache(seconds=0.2)
    account = Account(name="Acme", slug="acme")
    first, second = principal_for(account, Mode.TEST), principal_for(account, Mode.TEST)
    refreshed = asyncio.Event()

    async def refresh() -> Principal:
        refreshed.set()
        return second

    cache.put("cg_test_0", None, first)
    assert cache.get("cg_test_0", None, refresh) is first  # fresh: nothing started
    assert not refreshed.is_set()
    await asyncio.sleep(0.12)  # past half its time
    assert cache.get("cg_test_0", None, refresh) is first  # answered at once, refresh started
    await asyncio.wait_for(refreshed.wait(), 1)
    await asyncio.sleep(0)
    await asyncio.sleep(0.12)  # the old entry's time is over; the refreshed one's is not
    assert cache.get("cg_test_0", None) is second


async def test_a_refresh_that_fails_or_outlives_a_clear_keeps_nothing() -> None:
    cache = PrincipalCache(seconds=0.1)
    account = Account(name="Acme", slug="acme")
    principal = principal_for(account, Mode.TEST)
    release = asyncio.Event()

    async def refused() -> Principal:
        raise service.NotAuthenticated("The API key has been revoked.")

    async def slow() -> Principal:
        await release.wait()
        return principal

    cache.put("cg_test_0", None, principal)
    await asyncio.sleep(0.06)
    assert cache.get("cg_test_0", None, refused) is principal
    await asyncio.sleep(0.01)
    assert cache.get("cg_test_0", None) is None  # the next request authenticates itself

    cache.put("cg_test_1", None, principal)
    await asyncio.sleep(0.06)
    assert cache.get("cg_test_1", None, slow) is principal
    forget_principals()  # a revocation here while the refresh reads
    release.set()
    await asyncio.sleep(0.01)
    assert cache.get("cg_test_1", None) is None


async def test_concurrent_first_requests_of_a_key_record_its_use_once(
    db: Database, client: httpx.AsyncClient
) -> None:
    """A key whose recorded use is stale, authenticated by 20 requests at once (sockets opening
    together, a client's first burst): one of them writes `last_used_at`, not each in turn."""
    _, key = await make_key(db, await make_account(db))
    gql = GraphQLClient(client, key)
    with counting_statements(db) as statements:
        answers = await asyncio.gather(*(gql.execute(VIEWER) for _ in range(20)))
    assert all(answer["data"]["viewer"]["mode"] == "TEST" for answer in answers)
    writes = [s for s in statements if s.startswith("UPDATE api_key SET last_used_at")]
    assert len(writes) == 1
    async with db.session() as session:
        stored = (await session.exec(select(ApiKey))).one()
    assert stored.last_used_at is not None
