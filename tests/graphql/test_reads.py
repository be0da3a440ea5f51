"""RequestReads: an HTTP query reads through one connection, its uses one at a time, and a
failed read leaves the next one a fresh session."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from app.accounts.models import Account
from app.db import Database
from app.graphql.reads import RequestReads
from tests.conftest import GraphQLClient
from tests.offsets_fixtures import seed_catalog


@contextmanager
def counting_checkouts(db: Database) -> Iterator[list[object]]:
    """The connections `db`'s pool hands out inside the block."""
    checkouts: list[object] = []

    def record(connection: object, *_: object) -> None:
        checkouts.append(connection)

    event.listen(db.engine.sync_engine, "checkout", record)
    try:
        yield checkouts
    finally:
        event.remove(db.engine.sync_engine, "checkout", record)


async def test_an_http_query_reads_all_its_relations_through_one_connection(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    await gql.execute("{ viewer { mode } }")  # the key's principal is cached from here on
    query = """{
      projects { edges { node { name creditBatches { vintage } availableMass { amount } } } }
      bundles { edges { node { name projects { name } availableMass { amount } } } }
      portfolios { totalCount edges { node { bundles { weight bundle { name } } } } } }"""
    with counting_checkouts(db) as checkouts:
        body = await gql.execute(query)
    assert "errors" not in body, body
    assert len(body["data"]["projects"]["edges"]) == 2
    assert len(checkouts) == 1


async def test_a_shared_session_serves_one_use_at_a_time_and_survives_a_failed_read(
    db: Database,
) -> None:
    reads = RequestReads(db, shareable=True)
    reads.share()
    active = 0
    most = 0

    async def read() -> int:
        nonlocal active, most
        async with reads.session() as session:
            active += 1
            most = max(most, active)
            await asyncio.sleep(0.01)
            value = (await session.exec(text("SELECT 1"))).scalar_one()  # type: ignore[call-overload]
            active -= 1
            return int(value)

    assert await asyncio.gather(*(read() for _ in range(5))) == [1] * 5
    assert most == 1
    with pytest.raises(DBAPIError):
        async with reads.session() as session:
            await session.exec(text("SELECT * FROM no_such_table"))  # type: ignore[call-overload]
    # On PostgreSQL the failed statement aborted that transaction: this is another session.
    assert await read() == 1
    await reads.close()


async def test_a_quote_reads_through_the_operations_connection(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    """A quote is a query field: it must not take a second connection while its operation
    holds the shared one (N concurrent such queries on a pool of N would each hold one and
    wait for another, until the pool's timeout)."""
    await seed_catalog(db, account)
    await gql.execute("{ viewer { mode } }")  # the key's principal is cached from here on
    query = """{ projects { edges { node { name } } }
      quoteByMass(input: {mass: {amount: "1", unit: T}}) { quote { totalCost { amount } } } }"""
    with counting_checkouts(db) as checkouts:
        body = await gql.execute(query)
    assert "errors" not in body, body
    assert body["data"]["quoteByMass"]["quote"]["totalCost"]["amount"] == "16.00"
    assert len(checkouts) == 1
