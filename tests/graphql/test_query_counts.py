"""Nested reads go through dataloaders: statements depend on a query's shape, not page size."""

import httpx
import pytest

from app.accounts.models import Mode
from app.config import Settings
from app.db import Database
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
