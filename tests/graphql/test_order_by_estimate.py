"""An estimate offset through its order: the order links back to it and covers it."""

import httpx

from app.accounts.models import Mode
from app.db import Database
from tests.conftest import GraphQLClient, make_account, make_key
from tests.offsets_fixtures import principal_for, stock_of_tonnes

ESTIMATE = """mutation {
  estimateGroundTransport(input: {distanceKm: "100.3", vehicleType: PASSENGER_CAR_VAN_OR_SUV}) {
    estimate { id totalEmission { amount unit } }
    userErrors { code field message }
  }
}"""
ORDER = """mutation($id: ID!) {
  createOrderByEstimate(input: {estimateId: $id}) {
    order { mass { amount unit } estimate { id totalEmission { amount } } }
    userErrors { code field message }
  }
}"""


async def test_order_by_estimate_covers_it_to_the_gram_and_links_back(
    db: Database, client: httpx.AsyncClient
) -> None:
    account = await make_account(db)
    _, key = await make_key(db, account, Mode.TEST)
    admin = principal_for(account)
    await stock_of_tonnes(db, admin, [5])
    gql = GraphQLClient(client, key)
    estimate = (await gql.execute(ESTIMATE))["data"]["estimateGroundTransport"]["estimate"]
    # 100.3 km x 0.16725 kg/km = 16.775175 kg: the offset rounds up to 16.776 kg.
    assert estimate["totalEmission"] == {"amount": "16.775175", "unit": "KG"}
    payload = (await gql.execute(ORDER, id=estimate["id"]))["data"]["createOrderByEstimate"]
    assert payload["userErrors"] == []
    order = payload["order"]
    assert order["mass"]["amount"].startswith("16.776")
    assert order["estimate"]["id"] == estimate["id"]
    again = (await gql.execute(ORDER, id=estimate["id"]))["data"]["createOrderByEstimate"]
    assert again["userErrors"][0]["code"] == "ESTIMATE_ALREADY_ORDERED"
