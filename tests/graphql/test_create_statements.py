"""What one createOrderByMass costs in SQL over HTTP, once its key is authenticated."""

import httpx
import pytest

from app.accounts.models import Mode
from app.config import Settings
from app.db import Database
from tests.conftest import GraphQLClient, counting_statements, make_account, make_key
from tests.offsets_fixtures import principal_for, stock_of_tonnes

CREATE = """mutation($key: String!) {
  createOrderByMass(input: {mass: {amount: "1", unit: KG}, idempotencyKey: $key}) {
    order { id state } userErrors { code message } } }"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The key's principal stays cached, as it does under load; no worker competing.
    return settings.model_copy(update={"ws_access_check_seconds": 600.0, "run_worker": False})


async def test_a_create_reads_its_portfolio_and_writes_each_table_once(
    db: Database, client: httpx.AsyncClient
) -> None:
    account = await make_account(db)
    _, key = await make_key(db, account, Mode.TEST)
    await stock_of_tonnes(db, principal_for(account), [5])
    gql = GraphQLClient(client, key)
    await gql.execute(CREATE, key="first")  # authenticates and records the key's use
    with counting_statements(db) as statements:
        body = await gql.execute(CREATE, key="second")
    assert body["data"]["createOrderByMass"]["userErrors"] == [], body
    verbs = [" ".join(statement.split()[:3]) for statement in statements]
    # The portfolio and its bundles (read once per group of creates), one INSERT per table
    # (a group's creates share them), and the data versions. Authentication is cached.
    assert verbs == [
        "SELECT portfolio.id, portfolio.account_id,",
        "SELECT portfolio_bundle.portfolio_id, portfolio_bundle.bundle_id,",
        "INSERT INTO offset_order",
        "INSERT INTO order_line",
        "INSERT INTO event",
        "INSERT INTO data_version",
    ]
