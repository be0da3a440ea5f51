"""Limits before execution (body size, query cost) and the cost-point bucket of each key."""

from collections.abc import AsyncIterator

import httpx
import pytest

from app.accounts.models import Account
from app.config import Settings
from app.db import Database
from app.main import create_app
from tests.conftest import GraphQLClient
from tests.graphql.test_emissions_customer_orders import LAPTOP, UPSERT, device, order_input
from tests.offsets_fixtures import TONNE, fulfil, place_order, seed_catalog

VIEWER = "{ viewer { mode } }"
SUBACCOUNTS = """query($n: Int!) { subaccounts(first: $n) {
    edges { cursor node { id name } } pageInfo { hasNextPage } totalCount } }"""
CREATE_SUBACCOUNT = """mutation($name: String!) { createSubaccount(input: {name: $name}) {
    subaccount { id name } userErrors { code field message } } }"""


def cost(body: dict) -> dict:  # type: ignore[type-arg]
    return body["extensions"]["cost"]  # type: ignore[no-any-return]


def requested_and_actual(body: dict) -> tuple[int, int | None]:  # type: ignore[type-arg]
    return cost(body)["requestedQueryCost"], cost(body)["actualQueryCost"]


async def test_scalars_are_free_objects_cost_one_and_no_operation_is_free(
    gql: GraphQLClient,
) -> None:
    assert requested_and_actual(await gql.execute(VIEWER)) == (1, 1)
    assert requested_and_actual(await gql.execute("{ viewer { mode account { slug } } }")) == (
        2,
        2,
    )
    assert requested_and_actual(await gql.execute("{ __typename }")) == (1, 1)  # the minimum
    # Fields sharing a response key are merged, as GraphQL executes them; aliases are not.
    merged = await gql.execute("{ viewer { mode } viewer { account { slug } } }")
    assert requested_and_actual(merged) == (2, 2)
    aliased = await gql.execute("{ a: viewer { mode } b: viewer { mode } }")
    assert requested_and_actual(aliased) == (2, 2)


async def test_a_connection_costs_two_plus_its_page_and_actual_counts_the_rows_returned(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    gql = GraphQLClient(client, admin_key)
    for name in ("North", "South", "East"):
        created = await gql.execute(CREATE_SUBACCOUNT, name=name)
        # a mutation field 10 (its payload included) + subaccount 1 + userErrors 1
        assert requested_and_actual(created) == (12, 12)
    page = await gql.execute(SUBACCOUNTS, n=50)
    assert len(page["data"]["subaccounts"]["edges"]) == 3
    # 2 + 50 x node 1 (edges, cursor, pageInfo and totalCount are free); 3 rows came back
    assert requested_and_actual(page) == (52, 5)
    default_page = await gql.execute("{ subaccounts { edges { node { id } } } }")
    assert requested_and_actual(default_page) == (22, 5)  # 20 when `first` is not given


async def test_nested_lists_and_fragments_are_costed(gql: GraphQLClient) -> None:
    body = await gql.execute(
        """query { orders(first: 5) { ...Page } node(id: "T3JkZXI6MQ==") { ... on Order { id } } }
        fragment Page on OrderConnection {
          edges { node { id allocations { serialRange } mass { amount } } } }"""
    )
    # orders 2 + 5 x (node 1 + allocations 1 + mass 1) = 17; node 1; nothing exists: 2 + 0 + 1
    assert requested_and_actual(body) == (18, 3)


async def test_actual_cost_counts_rows_returned_every_list_item_and_nulls_as_nothing(
    db: Database, settings: Settings, account: Account, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    await place_order(db, account, TONNE)
    await fulfil(db, settings)  # 600 kg from one forest batch, 400 kg from the dac batch
    await place_order(db, account, TONNE)  # placed, not fulfilled: no certificate, allocations
    body = await gql.execute(
        """{ orders(first: 10) { edges { node {
          state certificate { id } allocations { serialRange project { name } } } } } }"""
    )
    assert [edge["node"]["state"] for edge in body["data"]["orders"]["edges"]] == [
        "PLACED",
        "FULFILLED",
    ]
    # requested: 2 + 10 x (node 1 + certificate 1 + allocations 1 + project 1) = 42
    # actual: 2 + placed (node 1 + certificate null 1 + allocations empty 1)
    #           + fulfilled (node 1 + certificate 1 + 2 allocations x (1 + project 1)) = 11
    assert requested_and_actual(body) == (42, 11)


async def test_page_sizes_come_from_variables_with_their_defaults_and_first_0_costs_no_items(
    gql: GraphQLClient,
) -> None:
    defaulted = "query($n: Int = 100) { subaccounts(first: $n) { edges { node { id } } } }"
    assert requested_and_actual(await gql.execute(defaulted)) == (102, 2)
    assert requested_and_actual(await gql.execute(defaulted, n=5)) == (7, 2)
    unset = "query($n: Int) { subaccounts(first: $n) { edges { node { id } } } }"
    assert requested_and_actual(await gql.execute(unset)) == (22, 2)  # null: the default 20
    empty = "{ orders(first: 0) { edges { node { id allocations { serialRange } } } } }"
    assert requested_and_actual(await gql.execute(empty)) == (2, 2)


async def test_long_unpaginated_lists_are_costed_at_their_assumed_size(gql: GraphQLClient) -> None:
    # CustomerOrder.items 50, Project.creditBatches 10, Order.webhookDeliveries 10,
    # WebhookDelivery.attempts 10, DeviceEmissions.orders 20; any other list 1
    one_order = "{ customerOrders(first: 1) { edges { node { items { serialNumber } } } } }"
    assert requested_and_actual(await gql.execute(one_order))[0] == 2 + (1 + 50)
    batches = "{ projects(first: 1) { edges { node { creditBatches { quantity { amount } } } } } }"
    assert requested_and_actual(await gql.execute(batches))[0] == 2 + (1 + 10 * (1 + 1))
    deliveries = """{ orders(first: 1) { edges { node {
        webhookDeliveries { id attempts { statusCode } } } } } }"""
    assert requested_and_actual(await gql.execute(deliveries))[0] == 2 + (1 + 10 * (1 + 10))
    device_orders = '{ deviceEmissions(serialNumber: "SN-1") { orders { orderId } } }'
    assert requested_and_actual(await gql.execute(device_orders))[0] == 1 + 20
    # 100 customer orders with their items: 2 + 100 x (1 + 50) = 5,102, over the 1,000 maximum
    refused = await gql.execute(
        "{ customerOrders(first: 100) { edges { node { items { serialNumber } } } } }"
    )
    assert refused["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "Query cost 5102 exceeds the maximum of 1000" in refused["errors"][0]["message"]


async def test_queries_over_the_maximum_cost_are_refused_before_running(
    settings: Settings, db: Database, test_key: str
) -> None:
    strict = settings.model_copy(update={"max_query_cost": 300})
    app = create_app(strict, database=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        gql = GraphQLClient(http, test_key)
        query = "query($n: Int!) { orders(first: $n) { edges { node { id } } } }"
        assert requested_and_actual(await gql.execute(query, n=98)) == (100, 2)
        refused = await gql.execute(query, n=299)
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "exceeds the maximum of 300" in error["message"]
    assert refused["data"] is None
    assert cost(refused) == {
        "requestedQueryCost": 301,
        "actualQueryCost": None,
        "throttleStatus": None,  # rate limits are off in this suite
    }


async def test_bodies_over_the_limit_are_413(
    settings: Settings, db: Database, test_key: str
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 1024})
    app = create_app(small, database=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        gql = GraphQLClient(http, test_key)
        assert (await gql.post(VIEWER)).status_code == 200
        big = await gql.post(VIEWER + " " * 2000)
        assert big.status_code == 413


@pytest.fixture(params=["memory", "redis"])
async def bucketed(
    request: pytest.FixtureRequest, settings: Settings, db: Database
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a 100-point bucket per key restored at 1 point a second, in memory or in
    Redis (each test's keys are new, so their Redis buckets are too)."""
    update: dict[str, object] = {"rate_limit_per_second": 1.0, "rate_limit_burst": 100}
    if request.param == "redis":
        update["redis_url"] = request.getfixturevalue("redis_url")
    app = create_app(settings.model_copy(update=update), database=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http
    await app.state.rate_limiter.close()


async def test_the_requested_cost_is_taken_up_front_and_the_unused_part_refunded(
    bucketed: httpx.AsyncClient, admin_key: str
) -> None:
    gql = GraphQLClient(bucketed, admin_key)
    response = await gql.post(SUBACCOUNTS, n=98)
    assert response.status_code == 200
    # 100 taken (2 + 98), 98 refunded: the account has no subaccounts, the page cost 2.
    assert cost(response.json()) == {
        "requestedQueryCost": 100,
        "actualQueryCost": 2,
        "throttleStatus": {
            "maximumAvailable": 100.0,
            "currentlyAvailable": 98,
            "restoreRate": 1.0,
        },
    }
    assert response.headers["ratelimit-policy"] == '"cost";q=100;w=100'
    assert response.headers["ratelimit"] == '"cost";r=98;t=2'


async def test_a_query_costing_more_than_the_bucket_holds_is_429_and_nothing_runs(
    bucketed: httpx.AsyncClient, admin_key: str, test_key: str
) -> None:
    gql = GraphQLClient(bucketed, admin_key)
    for name in ("a", "b", "c", "d", "e", "f", "g"):
        assert (await gql.post(CREATE_SUBACCOUNT, name=name)).status_code == 200  # 7 x 12
    refused = await gql.post(SUBACCOUNTS, n=30)  # 32 points; about 16 left
    assert refused.status_code == 429
    body = refused.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    status = cost(body)["throttleStatus"]
    assert cost(body)["actualQueryCost"] is None
    assert 16 <= status["currentlyAvailable"] < 18  # nothing taken; a second restores 1 point
    assert int(refused.headers["retry-after"]) == 32 - status["currentlyAvailable"]
    assert refused.headers["ratelimit"].startswith(f'"cost";r={status["currentlyAvailable"]};')
    # What the bucket still holds pays for a cheaper query, and another key has its own bucket.
    assert (await gql.post(VIEWER)).status_code == 200
    other = await GraphQLClient(bucketed, test_key).post(VIEWER)
    assert cost(other.json())["throttleStatus"]["currentlyAvailable"] == 99


async def test_a_query_costing_more_than_a_full_bucket_is_too_complex(
    bucketed: httpx.AsyncClient, admin_key: str
) -> None:
    refused = await GraphQLClient(bucketed, admin_key).post(SUBACCOUNTS, n=99)
    assert refused.status_code == 200
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "exceeds the maximum of 100" in error["message"]


async def test_a_request_that_never_executes_costs_one_point(
    bucketed: httpx.AsyncClient, test_key: str
) -> None:
    gql = GraphQLClient(bucketed, test_key)
    invalid = await gql.post("{ noSuchField }")
    assert invalid.json()["errors"]
    assert invalid.headers["ratelimit"] == '"cost";r=99;t=1'
    unparsable = await gql.post("{ viewer ")
    assert unparsable.headers["ratelimit"] == '"cost";r=98;t=2'


async def test_every_api_key_has_its_own_redis_bucket_shared_by_all_processes(
    settings: Settings, db: Database, test_key: str, redis_url: str
) -> None:
    """Two app instances (two processes' worth of state) draw on one bucket in Redis."""
    update = {"rate_limit_per_second": 1.0, "rate_limit_burst": 3, "redis_url": redis_url}
    apps = [create_app(settings.model_copy(update=update), database=db) for _ in range(2)]
    statuses = []
    for attempt in range(4):
        app = apps[attempt % 2]
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http:
            statuses.append((await GraphQLClient(http, test_key).post(VIEWER)).status_code)
    for app in apps:
        await app.state.rate_limiter.close()
    assert statuses == [200, 200, 200, 429]


CREATE_CUSTOMER_ORDER = """mutation($input: CreateCustomerOrderInput!) {
  createCustomerOrder(input: $input) { customerOrder { id } userErrors { code field message } } }"""


async def test_items_beyond_the_assumed_size_are_charged_after_and_the_bucket_goes_into_debt(
    bucketed: httpx.AsyncClient, admin_key: str
) -> None:
    gql = GraphQLClient(bucketed, admin_key)
    assert (await gql.execute(UPSERT, input=LAPTOP))["data"]["upsertProduct"]["userErrors"] == []
    items = [device(f"SN-{n}") for n in range(120)]
    created = await gql.execute(CREATE_CUSTOMER_ORDER, input=order_input(items))
    order_id = created["data"]["createCustomerOrder"]["customerOrder"]["id"]
    before = cost(created)["throttleStatus"]["currentlyAvailable"]
    response = await gql.post(
        "query($id: ID!) { customerOrder(id: $id) { items { serialNumber } } }", id=order_id
    )
    body = response.json()
    assert len(body["data"]["customerOrder"]["items"]) == 120
    # requested: customerOrder 1 + 50 assumed items; actual: 1 + the 120 items returned
    assert requested_and_actual(body) == (51, 121)
    after = cost(body)["throttleStatus"]["currentlyAvailable"]
    assert before - 121 <= after <= before - 121 + 2  # below zero: the whole read was paid
    assert after < 0
    assert response.headers["ratelimit"].startswith('"cost";r=0;')
    waiting = await gql.post(VIEWER)
    assert waiting.status_code == 429
    assert waiting.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert int(waiting.headers["retry-after"]) >= 1 - after
