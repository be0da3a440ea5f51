"""The product catalog and customer orders through GraphQL: the seed's shape and method."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from app.accounts import service as accounts
from app.accounts.service import Principal
from app.config import Settings
from app.db import Database
from app.emissions import customer_orders
from app.emissions.demo import DEMO_PRODUCTS, seed_demo_products
from app.main import create_app
from tests.conftest import GraphQLClient

UPSERT = """mutation($input: UpsertProductInput!) {
  upsertProduct(input: $input) {
    product { id productId name embodiedEmission { amount unit } weight { amount }
              packaging { factorId material mass { amount } } shipping { mode distanceKm }
              powerWatts dailyUseHours gridCountry source }
    userErrors { code field message }
  }
}"""
PART = "description emission emissionUnit ghgScope ghgCategory type"
ORDER_FIELDS = f"""
  id customerId orderId orderDate tenureStartDate status totalEmission emissionUnit itemCount
  createdAt
  items {{
    deviceId serialNumber type totalEmission emissionUnit
    emissionBreakdown {{
      productEmbodiedEmission {{ {PART} }} packaging {{ {PART} }}
      transportation {{ {PART} }} productUse {{ {PART} }}
    }}
  }}
  estimate {{ id kind totalEmission {{ amount unit }} }}
"""
CREATE = (
    "mutation($input: CreateCustomerOrderInput!) { createCustomerOrder(input: $input) {"
    f" customerOrder {{ {ORDER_FIELDS} }} userErrors {{ code field message }} }} }}"
)
COUNTS = "{ customerOrders { totalCount } estimates { totalCount } }"

LAPTOP = {
    "productId": "laptop",
    "name": "Laptop 13",
    "embodiedEmissionKg": "109.35",
    "lifetimeMonths": 48,
    "weightKg": "1.24",
    "packaging": {"factorId": "desnz2025:19_506_5156_15_1", "massKg": "0.5"},
    "shipping": {"mode": "ROAD", "distanceKm": "300"},
    "powerWatts": "30",
    "dailyUseHours": "8",
    "gridCountry": "GB",
    "source": "test figures",
}


def order_input(items: list[dict[str, Any]], order_id: str = "order-1") -> dict[str, Any]:
    return {
        "customerId": "customer-1",
        "orderId": order_id,
        "orderDate": "2024-12-12",
        "tenureStartDate": "2025-01-01",
        "items": [{"config": config} for config in items],
    }


def device(serial: str = "SN-1", **config: Any) -> dict[str, Any]:
    return {"productId": "laptop", "serialNumber": serial, "tenureMonths": 3, **config}


@pytest.fixture
async def admin(client: httpx.AsyncClient, admin_key: str) -> GraphQLClient:
    admin = GraphQLClient(client, admin_key)
    payload = (await admin.execute(UPSERT, input=LAPTOP))["data"]["upsertProduct"]
    assert payload["userErrors"] == []
    return admin


async def _create(gql: GraphQLClient, input: dict[str, Any]) -> dict[str, Any]:
    body = await gql.execute(CREATE, input=input)
    assert "errors" not in body, body
    return body["data"]["createCustomerOrder"]  # type: ignore[no-any-return]


async def test_upsert_product_stores_exact_figures_and_replaces_them(admin: GraphQLClient) -> None:
    changed = {**LAPTOP, "name": "Laptop 13 (2025)", "weightKg": "1.3"}
    product = (await admin.execute(UPSERT, input=changed))["data"]["upsertProduct"]["product"]

    assert product["name"] == "Laptop 13 (2025)"
    assert product["embodiedEmission"] == {"amount": "109.350", "unit": "KG"}
    assert product["weight"] == {"amount": "1.300"}
    assert product["packaging"]["material"].startswith("Material use > Paper")
    assert product["shipping"] == {"mode": "ROAD", "distanceKm": "300"}
    assert (product["powerWatts"], product["dailyUseHours"]) == ("30", "8")
    listed = (await admin.execute("{ products { totalCount } }"))["data"]["products"]
    assert listed["totalCount"] == 1
    query = '{ product(productId: "laptop") { name } missing: product(productId: "x") { name } }'
    assert (await admin.execute(query))["data"] == {
        "product": {"name": "Laptop 13 (2025)"},
        "missing": None,
    }


async def test_upsert_product_needs_an_admin_key(gql: GraphQLClient) -> None:
    payload = (await gql.execute(UPSERT, input=LAPTOP))["data"]["upsertProduct"]

    assert payload["product"] is None
    assert payload["userErrors"][0]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"productId": " "}, "INVALID_INPUT", "productId"),
        ({"embodiedEmissionKg": "-1"}, "INVALID_INPUT", "embodiedEmissionKg"),
        ({"embodiedEmissionKg": "1.0001"}, "INVALID_INPUT", "embodiedEmissionKg"),
        ({"lifetimeMonths": 0}, "INVALID_INPUT", "lifetimeMonths"),
        ({"weightKg": "0"}, "INVALID_INPUT", "weightKg"),
        ({"packaging": {"factorId": "nope", "massKg": "1"}}, "NOT_FOUND", "packaging.factorId"),
        ({"dailyUseHours": "25"}, "INVALID_INPUT", "dailyUseHours"),
        ({"gridCountry": "ZZ"}, "INVALID_INPUT", "gridCountry"),
    ],
)
async def test_bad_product_input_is_a_typed_user_error(
    client: httpx.AsyncClient, admin_key: str, change: dict[str, Any], code: str, field: str
) -> None:
    admin = GraphQLClient(client, admin_key)
    payload = (await admin.execute(UPSERT, input={**LAPTOP, **change}))["data"]["upsertProduct"]

    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, field)]
    assert (await admin.execute("{ products { totalCount } }"))["data"]["products"][
        "totalCount"
    ] == 0


async def test_a_customer_order_has_the_seed_shape_and_hand_computed_parts(
    admin: GraphQLClient, gql: GraphQLClient
) -> None:
    payload = await _create(gql, order_input([device()]))

    assert payload["userErrors"] == []
    order = payload["customerOrder"]
    assert order["status"] == "CREATED"
    assert order["emissionUnit"] == "kgCO2e"
    assert (order["orderDate"], order["tenureStartDate"]) == ("2024-12-12", "2025-01-01")
    (item,) = order["items"]
    assert (item["deviceId"], item["serialNumber"], item["type"]) == ("laptop", "SN-1", "PRODUCT")
    parts = item["emissionBreakdown"]
    # Embodied: 109.35 x 3 / 48 (the seed's worked example).
    assert parts["productEmbodiedEmission"]["emission"] == 6.834375
    # Packaging: 0.5 kg of board x 1199.72542 per tonne = 0.59986271, rounded up to the mg.
    assert parts["packaging"]["emission"] == 0.599863
    # Transportation: (1.24 + 0.5) kg / 1000 x 300 km x 0.10163 (HGV) = 0.05305086.
    assert parts["transportation"]["emission"] == 0.053051
    # Use: 30 W x 8 h x 30.4375 days x 3 months x 0.20705 = 4.53750075.
    assert parts["productUse"]["emission"] == 4.537501
    assert [(p["ghgScope"], p["ghgCategory"], p["type"]) for p in parts.values()] == [
        ("3", "Category 1: Purchased goods and services", "estimated"),
        ("3", "Category 1: Purchased goods and services", "estimated"),
        ("3", "Category 4: Upstream transportation and distribution", "estimated"),
        ("2", "Electricity", "indicative"),
    ]
    assert {p["emissionUnit"] for p in parts.values()} == {"kgCO2e"}
    total = round(sum(p["emission"] for p in parts.values()), 6)
    assert item["totalEmission"] == order["totalEmission"] == total == 12.02479
    assert order["estimate"]["kind"] == "CUSTOMER_ORDER"
    assert order["estimate"]["totalEmission"] == {"amount": "12.024790", "unit": "KG"}


async def test_tenure_and_weight_scale_their_parts(
    admin: GraphQLClient, gql: GraphQLClient
) -> None:
    payload = await _create(
        gql,
        order_input([device("A"), device("B", tenureMonths=6), device("C", weightKg="2.5")]),
    )

    a, b, c = (item["emissionBreakdown"] for item in payload["customerOrder"]["items"])
    assert b["productEmbodiedEmission"]["emission"] == 2 * a["productEmbodiedEmission"]["emission"]
    assert b["productUse"]["emission"] == 9.075002  # 2 x 4.53750075, rounded up
    assert b["transportation"] == a["transportation"]
    assert c["transportation"]["emission"] == 0.091467  # 3.0 kg / 1000 x 300 x 0.10163
    assert c["productUse"] == a["productUse"]
    order = payload["customerOrder"]
    assert order["totalEmission"] == pytest.approx(sum(i["totalEmission"] for i in order["items"]))


async def test_the_same_order_again_replays_and_other_items_conflict(
    admin: GraphQLClient, gql: GraphQLClient
) -> None:
    first = await _create(gql, order_input([device("A"), device("B")]))
    again = await _create(gql, order_input([device("A"), device("B")]))
    assert again["customerOrder"]["id"] == first["customerOrder"]["id"]

    conflict = await _create(gql, order_input([device("A"), device("B", tenureMonths=4)]))
    assert conflict["customerOrder"] is None
    assert [(e["code"], e["field"]) for e in conflict["userErrors"]] == [
        ("IDEMPOTENCY_CONFLICT", "orderId")
    ]
    counts = (await gql.execute(COUNTS))["data"]
    assert counts == {"customerOrders": {"totalCount": 1}, "estimates": {"totalCount": 1}}


async def _principal(db: Database, key: str) -> Principal:
    async with db.session() as session:
        principal, _ = await accounts.authenticate(session, key)
    return principal


async def test_concurrent_duplicates_make_exactly_one_order(
    db: Database, admin: GraphQLClient, gql: GraphQLClient, test_key: str
) -> None:
    principal = await _principal(db, test_key)
    spec = customer_orders.CustomerOrderSpec(
        customer_id="c",
        order_id="o",
        order_date=date(2025, 1, 1),
        tenure_start_date=date(2025, 1, 1),
        items=[customer_orders.DeviceConfig("laptop", f"SN-{i}", 3) for i in range(50)],
    )

    async def create() -> Any:
        async with db.transaction() as session:
            return (await customer_orders.create_customer_order(session, principal, spec)).id

    ids = await asyncio.gather(*(create() for _ in range(4)))
    assert len(set(ids)) == 1
    counts = (await gql.execute(COUNTS))["data"]
    assert counts == {"customerOrders": {"totalCount": 1}, "estimates": {"totalCount": 1}}


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"items": []}, "INVALID_INPUT", "items"),
        ({"customerId": ""}, "INVALID_INPUT", "customerId"),
        ({"orderId": " "}, "INVALID_INPUT", "orderId"),
        ({"tenureStartDate": "2024-12-01"}, "INVALID_INPUT", "tenureStartDate"),
        ({"items": [{"config": device(productId="ghost")}]}, "NOT_FOUND", "productId"),
        ({"items": [{"config": device(tenureMonths=0)}]}, "INVALID_INPUT", "tenureMonths"),
        ({"items": [{"config": device(tenureMonths=-2)}]}, "INVALID_INPUT", "tenureMonths"),
        ({"items": [{"config": device(weightKg=0)}]}, "INVALID_INPUT", "weightKg"),
        ({"items": [{"config": device(weightKg="-1")}]}, "INVALID_INPUT", "weightKg"),
        ({"items": [{"config": device(weightKg="1.0001")}]}, "INVALID_INPUT", "weightKg"),
        ({"items": [{"config": device(serialNumber="")}]}, "INVALID_INPUT", "serialNumber"),
        ({"items": [{"config": device()}, {"config": device()}]}, "INVALID_INPUT", "serialNumber"),
    ],
)
async def test_bad_order_input_names_its_field_and_stores_nothing(
    admin: GraphQLClient, gql: GraphQLClient, change: dict[str, Any], code: str, field: str
) -> None:
    payload = await _create(gql, {**order_input([device()]), **change})

    assert payload["customerOrder"] is None
    path = field if field in change else f"items.{len(change['items']) - 1}.config.{field}"
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, path)]
    counts = (await gql.execute(COUNTS))["data"]
    assert counts == {"customerOrders": {"totalCount": 0}, "estimates": {"totalCount": 0}}


async def test_a_bad_fourth_item_is_named_by_its_path(
    admin: GraphQLClient, gql: GraphQLClient
) -> None:
    items = [device(f"SN-{i}") for i in range(3)] + [device("SN-3", productId="ghost")]
    payload = await _create(gql, order_input(items))

    assert payload["userErrors"][0]["field"] == "items.3.config.productId"


async def test_more_items_than_the_maximum_are_refused(
    admin: GraphQLClient, gql: GraphQLClient
) -> None:
    items = [device(f"SN-{i}") for i in range(customer_orders.MAX_ITEMS_PER_ORDER + 1)]
    body = await gql.execute(CREATE, input=order_input(items))

    # Refused before graphql-core spends a second coercing them.
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert "$input.items has 10,001 items" in body["errors"][0]["message"]


async def test_ten_thousand_items_are_stored_and_read_back(
    admin: GraphQLClient, gql: GraphQLClient
) -> None:
    count = customer_orders.MAX_ITEMS_PER_ORDER
    items = [device(f"SN-{i}", tenureMonths=1 + i % 24) for i in range(count)]
    query = (
        "mutation($input: CreateCustomerOrderInput!) { createCustomerOrder(input: $input) {"
        " customerOrder { itemCount totalEmission items { serialNumber } } userErrors { code } } }"
    )
    body = await gql.execute(query, input=order_input(items))

    order = body["data"]["createCustomerOrder"]["customerOrder"]
    assert order["itemCount"] == count
    assert [item["serialNumber"] for item in order["items"]] == [f"SN-{i}" for i in range(count)]


async def test_orders_are_kept_apart_by_mode_and_subaccount(
    client: httpx.AsyncClient, admin: GraphQLClient, gql: GraphQLClient, test_key: str,
    live_key: str,
) -> None:  # fmt: skip
    await _create(gql, order_input([device("SN-1")]))
    subaccount = (
        await gql.execute('mutation { createSubaccount(input: {name: "A"}) { subaccount { id } } }')
    )["data"]["createSubaccount"]["subaccount"]["id"]
    scoped = GraphQLClient(client, test_key, **{"X-Subaccount-Id": subaccount})
    # The same key in a subaccount is another order, not a replay or a conflict.
    scoped_order = await _create(scoped, order_input([device("SN-1", tenureMonths=5)]))
    assert scoped_order["userErrors"] == []

    live = GraphQLClient(client, live_key)
    live_order = await _create(live, order_input([device("SN-1")]))
    assert live_order["userErrors"][0]["code"] == "NOT_FOUND"  # no live catalog product

    history = '{ deviceEmissions(serialNumber: "SN-1") { numberOfOrders orders { orderId } } }'
    assert (await gql.execute(history))["data"]["deviceEmissions"]["numberOfOrders"] == 1
    assert (await scoped.execute(history))["data"]["deviceEmissions"]["numberOfOrders"] == 1
    assert (await live.execute(history))["data"]["deviceEmissions"]["numberOfOrders"] == 0
    for viewer in (gql, scoped):
        assert (await viewer.execute(COUNTS))["data"]["customerOrders"]["totalCount"] == 1
    query = "query($id: ID!) { customerOrder(id: $id) { id } }"
    scoped_id = scoped_order["customerOrder"]["id"]
    assert (await gql.execute(query, id=scoped_id))["data"]["customerOrder"] is None
    assert (await scoped.execute(query, id=scoped_id))["data"]["customerOrder"] == {"id": scoped_id}


async def test_device_emissions_sum_a_device_across_orders(
    admin: GraphQLClient, gql: GraphQLClient
) -> None:
    await _create(gql, order_input([device("XYX")], "order-1"))
    await _create(gql, {**order_input([device("XYX", tenureMonths=6)], "order-2")})
    query = """{ deviceEmissions(serialNumber: "XYX") {
      serialNumber numberOfOrders totalEmission emissionUnit
      orders { customerId orderId orderDate tenureStartDate totalEmission emissionUnit
               emission { productEmbodiedEmission { emission } productUse { emission } } }
    } }"""

    history = (await gql.execute(query))["data"]["deviceEmissions"]

    assert history["serialNumber"] == "XYX"
    assert history["numberOfOrders"] == 2
    assert [o["orderId"] for o in history["orders"]] == ["order-1", "order-2"]
    assert history["totalEmission"] == pytest.approx(
        sum(o["totalEmission"] for o in history["orders"])
    )
    assert history["orders"][0]["emission"]["productEmbodiedEmission"]["emission"] == 6.834375


async def test_customer_orders_filter_by_customer_and_page(
    admin: GraphQLClient, gql: GraphQLClient
) -> None:
    for index in range(3):
        await _create(
            gql, {**order_input([device()], f"o-{index}"), "customerId": f"c-{index % 2}"}
        )
    query = """query($filter: CustomerOrderFilter, $first: Int) {
      customerOrders(first: $first, filter: $filter) {
        totalCount pageInfo { hasNextPage } edges { node { orderId } } } }"""

    mine = (await gql.execute(query, filter={"customerId": "c-0"}))["data"]["customerOrders"]
    assert [e["node"]["orderId"] for e in mine["edges"]] == ["o-2", "o-0"]
    page = (await gql.execute(query, first=1))["data"]["customerOrders"]
    assert page["totalCount"] == 3
    assert page["pageInfo"]["hasNextPage"] is True


@contextmanager
def counting_statements(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    for engine in db.engines:
        event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        for engine in db.engines:
            event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_statements_of_a_page_do_not_depend_on_its_size(
    db: Database, admin: GraphQLClient, settings: Settings, test_key: str
) -> None:
    # 20 orders' items are far over the default cost limit (items count as 50 each); this
    # test is about statements, so it raises the limit.
    app = create_app(settings.model_copy(update={"max_query_cost": 1_000_000}), database=db)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    gql = GraphQLClient(http, test_key)
    principal = await _principal(db, test_key)
    for index in range(20):
        spec = customer_orders.CustomerOrderSpec(
            customer_id="c",
            order_id=f"o-{index}",
            order_date=date(2025, 1, 1),
            tenure_start_date=date(2025, 1, 1),
            items=[customer_orders.DeviceConfig("laptop", f"SN-{index}-{i}", 3) for i in range(2)],
        )
        async with db.transaction() as session:
            await customer_orders.create_customer_order(session, principal, spec)
    query = f"""query($first: Int) {{ customerOrders(first: $first) {{
      edges {{ node {{ {ORDER_FIELDS} }} }} }} }}"""
    await gql.execute(query, first=1)  # the key's last-used write happens here, not below

    counts = {}
    for size in (2, 20):
        with counting_statements(db) as statements:
            body = await gql.execute(query, first=size)
        assert len(body["data"]["customerOrders"]["edges"]) == size
        assert all(len(e["node"]["items"]) == 2 for e in body["data"]["customerOrders"]["edges"])
        counts[size] = len(statements)
    await http.aclose()
    assert counts[2] == counts[20]


async def test_the_demo_catalog_seeds_a_dozen_products_once(
    db: Database, gql: GraphQLClient, test_key: str
) -> None:
    principal = await _principal(db, test_key)
    async with db.transaction() as session:
        added = await seed_demo_products(session, principal.account_id, principal.mode)
        again = await seed_demo_products(session, principal.account_id, principal.mode)

    assert (added, again) == (len(DEMO_PRODUCTS), 0)
    assert len(DEMO_PRODUCTS) >= 12
    query = "{ products(first: 100) { totalCount edges { node { productId source } } } }"
    products = (await gql.execute(query))["data"]["products"]
    assert products["totalCount"] == len(DEMO_PRODUCTS)
    assert all(edge["node"]["source"] for edge in products["edges"])
    macbook = next(s for s in DEMO_PRODUCTS if s.product_id == "macbook-air-13-m3")
    assert str(macbook.embodied_emission_kg) == "109.35"
