"""RequestReads: an HTTP query reads through one connection, its uses one at a time, and a
failed read leaves the next one a fresh session."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from starlette.testclient import TestClient

from app.accounts.models import Account
from app.config import Settings
from app.db import Database
from app.graphql.reads import RequestReads
from app.main import create_app
from tests.conftest import GraphQLClient
from tests.offsets_fixtures import gid, seed_catalog


@contextmanager
def counting_checkouts(db: Database) -> Iterator[list[object]]:
    """The connections `db`'s pool hands out inside the block."""
    checkouts: list[object] = []

    def record(connection: object, *_: object) -> None:
        checkouts.append(connection)

    for engine in db.engines:
        event.listen(engine.sync_engine, "checkout", record)
    try:
        yield checkouts
    finally:
        for engine in db.engines:
            event.remove(engine.sync_engine, "checkout", record)


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


TWO_BATCHES = """mutation($p: ID!) {
  a: addCreditBatch(input: {projectId: $p, vintage: 2030, serialPrefix: "A-1",
    quantity: {amount: "1", unit: T}}) { creditBatch { project { creditBatches { vintage } } } }
  b: addCreditBatch(input: {projectId: $p, vintage: 2031, serialPrefix: "B-1",
    quantity: {amount: "1", unit: T}}) { creditBatch { project { creditBatches { vintage } } } }
}"""


async def test_each_root_mutation_field_sees_what_the_fields_before_it_committed(
    db: Database, account: Account, client: httpx.AsyncClient, admin_key: str
) -> None:
    """The operation's loaders must not answer the second payload from the rows they cached
    for the first: its project has the batch the second field just added."""
    seeded = await seed_catalog(db, account)
    body = await GraphQLClient(client, admin_key).execute(
        TWO_BATCHES, p=gid("Project", seeded.forest)
    )
    assert "errors" not in body, body
    vintages = {
        name: {b["vintage"] for b in body["data"][name]["creditBatch"]["project"]["creditBatches"]}
        for name in ("a", "b")
    }
    assert 2030 in vintages["a"]
    assert 2031 not in vintages["a"]
    assert {2030, 2031} <= vintages["b"]


BATCHES = "{ projects { edges { node { creditBatches { vintage } } } } }"
ADD_BATCH = """mutation($p: ID!) { addCreditBatch(input: {projectId: $p, vintage: 2032,
  serialPrefix: "W-1", quantity: {amount: "1", unit: T}}) {
  creditBatch { project { creditBatches { vintage } } } } }"""


def _over_one_socket(
    settings: Settings, key: str, operations: list[tuple[str, dict[str, Any]]]
) -> list[Any]:
    """The `data` of each operation, sent one after another on one graphql-transport-ws socket
    (the app runs in the test client's own event loop, with its own engine)."""
    results = []
    with (
        TestClient(create_app(settings)) as http,
        http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws,
    ):
        ws.send_json({"type": "connection_init", "payload": {"apiKey": key}})
        assert ws.receive_json()["type"] == "connection_ack"
        for number, (query, variables) in enumerate(operations):
            payload = {"query": query, "variables": variables}
            ws.send_json({"id": str(number), "type": "subscribe", "payload": payload})
            message = ws.receive_json()
            while message["type"] == "ping":
                message = ws.receive_json()
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message
            results.append(message["payload"]["data"])
            assert ws.receive_json()["type"] == "complete"
    return results


async def test_the_operations_of_one_socket_each_read_fresh_rows(
    settings: Settings, db: Database, account: Account, admin_key: str
) -> None:
    """A socket's loaders outlive its operations: a query after a mutation on the same socket,
    and the mutation's own payload, must not get the rows an earlier query cached."""
    seeded = await seed_catalog(db, account)
    project = gid("Project", seeded.forest)
    before, added, after = await asyncio.to_thread(
        _over_one_socket,
        settings,
        admin_key,
        [(BATCHES, {}), (ADD_BATCH, {"p": project}), (BATCHES, {})],
    )

    def vintages(batches: list[dict[str, Any]]) -> set[int]:
        return {batch["vintage"] for batch in batches}

    assert not any(
        2032 in vintages(e["node"]["creditBatches"]) for e in before["projects"]["edges"]
    )
    assert 2032 in vintages(added["addCreditBatch"]["creditBatch"]["project"]["creditBatches"])
    assert any(2032 in vintages(e["node"]["creditBatches"]) for e in after["projects"]["edges"])
