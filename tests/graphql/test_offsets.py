"""The offsetting contract as clients see it (names and shapes from issue #3), and the whole
flow in one go: quote, order, fulfil, certificate. Details live in test_quotes.py,
test_orders.py and test_orders_listing.py."""

import httpx

from app.accounts.models import Account
from app.config import Settings
from app.db import Database
from tests.conftest import GraphQLClient
from tests.offsets_fixtures import fulfil, seed_catalog

TYPE = """query($name: String!) { __type(name: $name) {
  fields(includeDeprecated: true) { name } inputFields { name } enumValues { name } } }"""


async def _names(gql: GraphQLClient, type_name: str, kind: str) -> set[str]:
    found = (await gql.execute(TYPE, name=type_name))["data"]["__type"]
    assert found is not None, type_name
    return {item["name"] for item in found[kind]}


async def test_schema_has_the_offsetting_contract(gql: GraphQLClient) -> None:
    assert {
        "createProject",
        "addCreditBatch",
        "createBundle",
        "createPortfolio",
        "setDefaultPortfolio",
        "createOrderByMass",
        "createOrderByValue",
        "createOrderByEstimate",
        "createRideOrder",
        "cancelOrder",
    } <= await _names(gql, "Mutation", "fields")
    assert {
        "projects",
        "project",
        "bundles",
        "portfolios",
        "quoteByMass",
        "quoteByValue",
        "order",
        "orderByIdempotencyKey",
        "orders",
    } <= await _names(gql, "Query", "fields")
    common = {"idempotencyKey", "description", "metadata", "callbackUrl", "portfolioId"}
    for input_type, own in (
        ("CreateOrderByMassInput", "mass"),
        ("CreateOrderByValueInput", "value"),
        ("CreateOrderByEstimateInput", "estimateId"),
    ):
        assert common | {own} <= await _names(gql, input_type, "inputFields"), input_type
    assert common | {"distanceKm", "vehicleType"} <= await _names(
        gql, "CreateRideOrderInput", "inputFields"
    )
    assert {
        "id",
        "certificateId",
        "state",
        "mass",
        "price",
        "createdAt",
        "fulfilledAt",
        "cancelledAt",
        "description",
        "metadata",
        "idempotencyKey",
        "callbackUrl",
        "portfolio",
        "allocations",
        "projects",
        "certificate",
        "estimate",
        "history",
    } <= await _names(gql, "Order", "fields")
    assert await _names(gql, "OrderState", "enumValues") == {"PLACED", "FULFILLED", "CANCELLED"}
    assert {
        "INVALID_INPUT",
        "NOT_FOUND",
        "FORBIDDEN",
        "ACCOUNT_SUSPENDED",
        "IDEMPOTENCY_CONFLICT",
        "ESTIMATE_ALREADY_ORDERED",
        "QUANTITY_NOT_POSITIVE",
        "ORDER_NOT_CANCELLABLE",
    } <= await _names(gql, "ErrorCode", "enumValues")
    assert {"states", "createdAfter", "createdBefore"} <= await _names(
        gql, "OrdersFilter", "inputFields"
    )


async def test_quote_order_fulfil_certificate(
    db: Database,
    account: Account,
    settings: Settings,
    client: httpx.AsyncClient,
    gql: GraphQLClient,
) -> None:
    await seed_catalog(db, account)
    quote = (
        await gql.execute(
            '{ quoteByMass(input: {mass: {amount: "250", unit: KG}}) '
            "{ quote { totalCost { amount currency } inventorySufficient } } }"
        )
    )["data"]["quoteByMass"]["quote"]
    # 150 kg x $10/t + 100 kg x $25/t = $1.50 + $2.50
    assert quote == {
        "totalCost": {"amount": "4.00", "currency": "USD"},
        "inventorySufficient": True,
    }
    placed = (
        await gql.execute(
            """mutation { createOrderByMass(input: {mass: {amount: "250", unit: KG},
              description: "Flow"}) { order { id state price { amount } } userErrors { code } } }"""
        )
    )["data"]["createOrderByMass"]
    assert placed["userErrors"] == []
    assert placed["order"]["state"] == "PLACED"
    assert placed["order"]["price"] == {"amount": "4.00"}
    assert (await fulfil(db, settings)).fulfilled == 1
    order = (
        await gql.execute(
            "query($id: ID!) { order(id: $id) { state certificate { publicUrl downloadUrl } } }",
            id=placed["order"]["id"],
        )
    )["data"]["order"]
    assert order["state"] == "FULFILLED"
    for url in (order["certificate"]["publicUrl"], order["certificate"]["downloadUrl"]):
        assert url.startswith("http://testserver/certificates/")
        assert (await client.get(url)).status_code == 200
