"""Nested reads go through dataloaders: statements depend on a query's shape, not page size."""

import asyncio

import httpx
import pytest

from app import public_ids
from app.accounts.models import Account, Mode
from app.config import Settings
from app.db import Database
from app.graphql.dataloaders import DataLoaders
from app.graphql.reads import RequestReads
from app.offsets.fulfilment import fulfil_pending
from tests.conftest import (
    TEST_SECRET,
    GraphQLClient,
    counting_statements,
    make_account,
    make_key,
    versions_statements,
)
from tests.offsets_fixtures import place_one_tonne, principal_for, stock_of_tonnes

# The nested read of issue 10: a page of orders with their allocations' relations.
NESTED_READ = """query($first: Int!) {
  orders(first: $first) { edges { node {
    id state createdAt mass { amount unit } price { amount currency }
    certificate { id publicUrl }
    allocations { mass { amount } project { id name } bundle { id name } creditBatch { vintage } }
  } } }
}"""

ORDERS = """query($first: Int!) {
  orders(first: $first) {
    totalCount
    edges { node {
      id state mass { amount } price { amount currency }
      portfolio { name bundles { weight bundle { name availableMass { amount } } } }
      allocations {
        mass { amount } serialRange
        bundle { name unitPrice { amount } projects { name } }
        project { name registry country }
        creditBatch { vintage serialPrefix project { name } }
      }
      projects { name type }
      certificate { id publicUrl downloadUrl }
      history { state previousState at }
    } }
  }
}"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The key's principal stays cached for the whole test, so that the counts below never
    # depend on how long the machine took (authentication is one statement when not cached).
    return settings.model_copy(update={"ws_access_check_seconds": 600.0})


async def _counts(db: Database, client: httpx.AsyncClient, query: str) -> dict[int, int]:
    """Statements of `query` for pages of 5 and 50 fulfilled orders."""
    account = await make_account(db)
    _, key = await make_key(db, account, Mode.TEST)
    principal = principal_for(account)
    await stock_of_tonnes(db, principal, [30, 30])
    for _ in range(50):
        await place_one_tonne(db, principal)
    await fulfil_pending(db, TEST_SECRET)
    gql = GraphQLClient(client, key)
    await gql.execute("{ viewer { mode } }")  # authenticates and records the key's use

    counts = {}
    for size in (5, 50):
        with counting_statements(db) as statements:
            body = await gql.execute(query, first=size)
        assert "errors" not in body, body
        edges = body["data"]["orders"]["edges"]
        assert len(edges) == size
        assert all(edge["node"]["allocations"] for edge in edges)
        counts[size] = len(statements)
    print(f"statements per orders page: {counts}")
    return counts


async def test_orders_page_costs_the_same_statements_for_5_and_50_orders(
    db: Database, client: httpx.AsyncClient
) -> None:
    # The response cache's data versions (one statement, on SQLite outside the engine), the total,
    # the page, and one batch per relation: portfolio, its weighted bundles, their
    # stock, the allocations with their projects, bundles and batches (one joined statement),
    # the bundles' projects, the batches' projects, the history.
    expected = 9 + versions_statements(db)
    assert await _counts(db, client, ORDERS) == {5: expected, 50: expected}


async def test_nested_orders_read_is_three_statements_whatever_the_page_size(
    db: Database, client: httpx.AsyncClient
) -> None:
    # The data versions the response cache keys on (on SQLite outside the engine), the page
    # (no totalCount asked, so no
    # count) and the allocations joined to their projects, bundles and credit batches; the
    # key's principal is cached.
    expected = 2 + versions_statements(db)
    assert await _counts(db, client, NESTED_READ) == {5: expected, 50: expected}


async def test_total_count_is_counted_only_when_selected(
    db: Database, client: httpx.AsyncClient, test_key: str
) -> None:
    gql = GraphQLClient(client, test_key)
    await gql.execute("{ viewer { mode } }")
    page = "{ orders { edges { cursor } } }"
    counted = "{ orders { ...total } } fragment total on OrderConnection { n: totalCount }"
    with counting_statements(db) as plain:
        assert "errors" not in await gql.execute(page)
    with counting_statements(db) as with_total:
        body = await gql.execute(counted)
    assert body["data"]["orders"] == {"n": 0}
    versions = versions_statements(db)
    # The data versions, the page[, the count].
    assert (len(plain), len(with_total)) == (versions + 1, versions + 2)


ORDER = "query($id: ID!) { order(id: $id) { id state } }"
TWO_ORDERS = "query($a: ID!, $b: ID!) { a: order(id: $a) { id } b: order(id: $b) { id } }"


async def _two_orders(db: Database, account: Account) -> list[str]:
    principal = principal_for(account)
    await stock_of_tonnes(db, principal, [5])
    return [public_ids.encode("Order", await place_one_tonne(db, principal)) for _ in range(2)]


async def test_the_only_root_by_id_field_reads_once_and_batches_with_siblings_otherwise(
    db: Database, client: httpx.AsyncClient, account: Account, test_key: str
) -> None:
    gql = GraphQLClient(client, test_key)
    await gql.execute("{ viewer { mode } }")  # authenticates and records the key's use
    first, second = await _two_orders(db, account)
    versions = versions_statements(db)
    with counting_statements(db) as alone:
        body = await gql.execute(ORDER, id=first)
    assert body["data"] == {"order": {"id": first, "state": "PLACED"}}
    with counting_statements(db) as missing:
        body = await gql.execute(ORDER, id=first.replace(first[-4:], "AAAA"))
    assert body["data"] == {"order": None}
    with counting_statements(db) as siblings:
        body = await gql.execute(TWO_ORDERS, a=first, b=second)
    assert body["data"] == {"a": {"id": first}, "b": {"id": second}}
    # The data versions, then one read of the order(s): two root fields still share a batch.
    assert [len(alone), len(siblings)] == [versions + 1, versions + 1]
    assert len(missing) <= versions + 1


async def test_a_load_alone_reads_in_the_callers_task(db: Database, account: Account) -> None:
    """aiodataloader runs a batch in a task of its own, two loop turns after the load
    (`call_soon`, then the dispatch's task); on a busy process each turn waits behind all other
    ready work. A load alone reads in the caller's task: on SQLite, whose reads run on the
    loop's thread, in no loop turn at all."""
    principal = principal_for(account)
    await stock_of_tonnes(db, principal, [5])
    order_id = await place_one_tonne(db, principal)

    async def read(alone: bool) -> tuple[object, set[object], int]:
        reads = RequestReads(db, shareable=True)
        reads.share()
        loader = DataLoaders(reads, principal).order_by_id
        batch_tasks: set[object] = set()
        batch_load_fn = loader.batch_load_fn

        async def noting_the_task(ids: list[object]) -> object:
            batch_tasks.add(asyncio.current_task())
            return await batch_load_fn(ids)

        loader.batch_load_fn = noting_the_task  # type: ignore[method-assign,assignment]
        turns = 0

        async def count() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1

        try:
            async with reads.session():  # the session's connection is open before counting
                pass
            counter = asyncio.create_task(count())
            await asyncio.sleep(0)
            start = turns
            row = await (loader.load_alone(order_id) if alone else loader.load(order_id))
            counter.cancel()
            return row, batch_tasks, turns - start
        finally:
            await reads.close()

    row, tasks, turns = await read(alone=True)
    assert getattr(row, "id", None) == order_id
    assert tasks == {asyncio.current_task()}
    same, batch_tasks, batched_turns = await read(alone=False)
    assert getattr(same, "id", None) == order_id
    assert asyncio.current_task() not in batch_tasks
    if db.engine.dialect.name == "sqlite":
        assert (turns, batched_turns >= 2) == (0, True), (turns, batched_turns)
