"""Nested reads go through dataloaders: statements depend on a query's shape, not page size."""

import httpx

from app.accounts.models import Mode
from app.db import Database
from app.offsets.fulfilment import fulfil_pending
from tests.conftest import (
    TEST_SECRET,
    GraphQLClient,
    counting_statements,
    make_account,
    make_key,
)
from tests.offsets_fixtures import place_one_tonne, principal_for, stock_of_tonnes

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


async def test_orders_page_costs_the_same_statements_for_5_and_50_orders(
    db: Database, client: httpx.AsyncClient
) -> None:
    account = await make_account(db)
    _, key = await make_key(db, account, Mode.TEST)
    principal = principal_for(account)
    await stock_of_tonnes(db, principal, [30, 30])
    for _ in range(50):
        await place_one_tonne(db, principal)
    await fulfil_pending(db, TEST_SECRET)
    gql = GraphQLClient(client, key)
    await gql.execute("{ viewer { mode } }")  # records the key's use, outside the count

    counts = {}
    for size in (5, 50):
        with counting_statements(db) as statements:
            body = await gql.execute(ORDERS, first=size)
        assert "errors" not in body, body
        edges = body["data"]["orders"]["edges"]
        assert len(edges) == size
        assert all(edge["node"]["allocations"] for edge in edges)
        counts[size] = len(statements)
    assert counts[5] == counts[50], counts
    assert counts[50] <= 25, counts
    print(f"statements per orders page: {counts}")
