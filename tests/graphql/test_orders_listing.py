"""Reading orders: paging and filters, and who may see which order (modes, accounts,
subaccounts)."""

import uuid
from datetime import datetime

import httpx

from app.accounts.models import Account, Mode
from app.config import Settings
from app.db import Database
from app.offsets.models import OffsetOrder
from tests.conftest import GraphQLClient, make_account, make_key
from tests.offsets_fixtures import fulfil, gid, make_subaccount, place_order, seed_catalog

PAGE = """query($first: Int, $after: String, $last: Int, $before: String, $filter: OrdersFilter) {
  orders(first: $first, after: $after, last: $last, before: $before, filter: $filter) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id state description createdAt } }
  }
}"""
BY_MASS = """mutation($input: CreateOrderByMassInput!) {
  createOrderByMass(input: $input) { order { id state metadata } userErrors { code field } } }"""
CANCEL = """mutation($id: ID!) { cancelOrder(input: {id: $id}) {
  order { id state } userErrors { code field } } }"""
LOOKUP = """query($id: ID!, $key: String!) {
  order(id: $id) { id } node(id: $id) { id } orderByIdempotencyKey(key: $key) { id } }"""
STOCK = "{ bundles { edges { node { id availableMass { amount } } } } }"


def descriptions(connection: dict) -> list[str]:  # type: ignore[type-arg]
    return [edge["node"]["description"] for edge in connection["edges"]]


async def orders(gql: GraphQLClient, **variables: object) -> dict:  # type: ignore[type-arg]
    body = await gql.execute(PAGE, **variables)
    assert "errors" not in body, body
    return body["data"]["orders"]  # type: ignore[no-any-return]


def between(earlier: str, later: str) -> str:
    start, end = datetime.fromisoformat(earlier), datetime.fromisoformat(later)
    assert start < end
    return (start + (end - start) / 2).isoformat()


async def stock(gql: GraphQLClient) -> dict[str, str]:
    edges = (await gql.execute(STOCK))["data"]["bundles"]["edges"]
    return {edge["node"]["id"]: edge["node"]["availableMass"]["amount"] for edge in edges}


async def test_orders_page_newest_first_with_cursors(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    for index in range(5):
        await place_order(db, account, 1000, description=f"order {index}")
    first = await orders(gql, first=2)
    assert first["totalCount"] == 5
    assert descriptions(first) == ["order 4", "order 3"]
    assert (first["pageInfo"]["hasNextPage"], first["pageInfo"]["hasPreviousPage"]) == (
        True,
        False,
    )
    second = await orders(gql, first=2, after=first["pageInfo"]["endCursor"])
    assert descriptions(second) == ["order 2", "order 1"]
    rest = await orders(gql, first=10, after=second["pageInfo"]["endCursor"])
    assert descriptions(rest) == ["order 0"]
    assert rest["pageInfo"]["hasNextPage"] is False
    back = await orders(gql, last=2, before=second["pageInfo"]["startCursor"])
    assert descriptions(back) == ["order 4", "order 3"]
    assert back["pageInfo"]["hasPreviousPage"] is False
    tail = await orders(gql, last=2)
    assert descriptions(tail) == ["order 1", "order 0"]
    assert tail["pageInfo"]["hasPreviousPage"] is True
    for arguments in ({"first": 101}, {"first": -1}, {"after": "garbage"}, {"first": 1, "last": 1}):
        body = await gql.execute(PAGE, **arguments)
        assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT", arguments


async def test_orders_filter_by_state_and_creation_time(
    db: Database, account: Account, settings: Settings, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    placed = [await place_order(db, account, 1000, description=f"order {i}") for i in range(5)]
    cancelled = (await gql.execute(CANCEL, id=gid("Order", placed[1].id)))["data"]
    assert cancelled["cancelOrder"]["order"]["state"] == "CANCELLED"
    # "too big" wants more premium credits than there are: it stays PLACED.
    await place_order(db, account, 3_000_000, description="too big")
    await fulfil(db, settings)
    everything = await orders(gql, first=20)
    assert [e["node"]["state"] for e in everything["edges"]] == [
        "PLACED",
        "FULFILLED",
        "FULFILLED",
        "FULFILLED",
        "CANCELLED",
        "FULFILLED",
    ]
    created_at = {e["node"]["description"]: e["node"]["createdAt"] for e in everything["edges"]}

    only_cancelled = await orders(gql, filter={"states": ["CANCELLED"]})
    assert (only_cancelled["totalCount"], descriptions(only_cancelled)) == (1, ["order 1"])
    waiting = await orders(gql, filter={"states": ["PLACED"]})
    assert descriptions(waiting) == ["too big"]
    both = await orders(gql, filter={"states": ["PLACED", "CANCELLED"]})
    assert descriptions(both) == ["too big", "order 1"]

    cut = between(created_at["order 1"], created_at["order 2"])
    after = await orders(gql, filter={"createdAfter": cut})
    assert after["totalCount"] == 4
    assert descriptions(after) == ["too big", "order 4", "order 3", "order 2"]
    before = await orders(gql, filter={"createdBefore": cut})
    assert descriptions(before) == ["order 1", "order 0"]
    window = await orders(
        gql,
        first=1,
        filter={
            "createdAfter": cut,
            "createdBefore": between(created_at["order 4"], created_at["too big"]),
            "states": ["FULFILLED"],
        },
    )
    assert window["totalCount"] == 3
    assert descriptions(window) == ["order 4"]
    next_page = await orders(
        gql,
        first=5,
        after=window["pageInfo"]["endCursor"],
        filter={
            "createdAfter": cut,
            "createdBefore": between(created_at["order 4"], created_at["too big"]),
            "states": ["FULFILLED"],
        },
    )
    assert descriptions(next_page) == ["order 3", "order 2"]
    empty = await orders(gql, filter={"states": []})
    assert empty["totalCount"] == 6


async def test_test_orders_never_touch_live_stock_or_live_eyes(
    db: Database,
    account: Account,
    settings: Settings,
    client: httpx.AsyncClient,
    gql: GraphQLClient,
    live_key: str,
) -> None:
    test = await seed_catalog(db, account, Mode.TEST)
    live = await seed_catalog(db, account, Mode.LIVE)
    live_gql = GraphQLClient(client, live_key)
    live_before = await stock(live_gql)
    created = await gql.execute(
        BY_MASS, input={"mass": {"amount": "1", "unit": "T"}, "idempotencyKey": "shared-key"}
    )
    test_order = created["data"]["createOrderByMass"]["order"]
    assert (await fulfil(db, settings)).fulfilled == 1
    assert await stock(live_gql) == live_before
    assert await stock(gql) == {test.cheap_gid: "2400.000", test.premium_gid: "600.000"}

    seen = (await live_gql.execute(LOOKUP, id=test_order["id"], key="shared-key"))["data"]
    assert seen == {"order": None, "node": None, "orderByIdempotencyKey": None}
    assert (await orders(live_gql))["totalCount"] == 0
    cancel = (await live_gql.execute(CANCEL, id=test_order["id"]))["data"]["cancelOrder"]
    assert cancel["userErrors"] == [{"code": "NOT_FOUND", "field": "id"}]

    # The same key in live mode is another order, drawing on live stock only.
    live_order = (
        await live_gql.execute(
            BY_MASS, input={"mass": {"amount": "0.5", "unit": "T"}, "idempotencyKey": "shared-key"}
        )
    )["data"]["createOrderByMass"]["order"]
    assert live_order["id"] != test_order["id"]
    assert (await fulfil(db, settings)).fulfilled == 1
    assert await stock(live_gql) == {live.cheap_gid: "2700.000", live.premium_gid: "800.000"}
    assert await stock(gql) == {test.cheap_gid: "2400.000", test.premium_gid: "600.000"}
    assert (await gql.execute(LOOKUP, id=live_order["id"], key="x"))["data"]["order"] is None


async def test_orders_are_invisible_across_accounts(
    db: Database, account: Account, client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    mine = await place_order(db, account, 1000, idempotency_key="k")
    other = await make_account(db, "other", "Other Ltd")
    await seed_catalog(db, other)
    _, other_key = await make_key(db, other)
    intruder = GraphQLClient(client, other_key)
    seen = (await intruder.execute(LOOKUP, id=gid("Order", mine.id), key="k"))["data"]
    assert seen == {"order": None, "node": None, "orderByIdempotencyKey": None}
    cancel = (await intruder.execute(CANCEL, id=gid("Order", mine.id)))["data"]["cancelOrder"]
    assert cancel["userErrors"] == [{"code": "NOT_FOUND", "field": "id"}]
    # Idempotency keys are per account: the same key is a new order there.
    theirs = (
        await intruder.execute(
            BY_MASS, input={"mass": {"amount": "1", "unit": "KG"}, "idempotencyKey": "k"}
        )
    )["data"]["createOrderByMass"]
    assert theirs["userErrors"] == []
    assert theirs["order"]["id"] != gid("Order", mine.id)
    assert (await orders(gql))["totalCount"] == 1


async def test_subaccount_orders_are_isolated(
    db: Database,
    account: Account,
    settings: Settings,
    client: httpx.AsyncClient,
    gql: GraphQLClient,
    test_key: str,
) -> None:
    await seed_catalog(db, account)
    a = await make_subaccount(db, account, name="Client A")
    b = await make_subaccount(db, account, name="Client B")
    scoped = {
        "a": GraphQLClient(client, test_key, **{"X-Subaccount-Id": gid("Subaccount", a.id)}),
        "b": GraphQLClient(client, test_key, **{"X-Subaccount-Id": str(b.id)}),
        "root": gql,
    }
    ids: dict[str, str] = {}
    for name, requester in scoped.items():
        payload = (
            await requester.execute(
                BY_MASS,
                input={
                    "mass": {"amount": "1", "unit": "KG"},
                    "idempotencyKey": f"key-{name}",
                    "description": name,
                },
            )
        )["data"]["createOrderByMass"]
        assert payload["userErrors"] == []
        ids[name] = payload["order"]["id"]
    assert (await fulfil(db, settings)).fulfilled == 3
    for name, requester in scoped.items():
        listed = await orders(requester)
        assert (listed["totalCount"], descriptions(listed)) == (1, [name])
        for other_name, other_id in ids.items():
            seen = (await requester.execute(LOOKUP, id=other_id, key=f"key-{other_name}"))["data"]
            visible = other_name == name
            assert (seen["order"] is not None) is visible, (name, other_name)
            assert (seen["node"] is not None) is visible, (name, other_name)
            assert (seen["orderByIdempotencyKey"] is not None) is visible, (name, other_name)
    details = await scoped["a"].execute(
        "query($id: ID!) { order(id: $id) { state allocations { mass { amount } } "
        "history { state } certificate { id } } }",
        id=ids["a"],
    )
    order = details["data"]["order"]
    assert order["state"] == "FULFILLED"
    assert sum(float(a["mass"]["amount"]) for a in order["allocations"]) == 1.0
    assert [h["state"] for h in order["history"]] == ["PLACED", "FULFILLED"]
    assert order["certificate"] is not None
    # Another subaccount cannot cancel it, and neither can the account unscoped.
    placed = await place_order(db, account, 1000, subaccount=a)
    for name in ("b", "root"):
        cancel = (await scoped[name].execute(CANCEL, id=gid("Order", placed.id)))["data"]
        assert cancel["cancelOrder"]["userErrors"] == [{"code": "NOT_FOUND", "field": "id"}]
    cancel = (await scoped["a"].execute(CANCEL, id=gid("Order", placed.id)))["data"]
    assert cancel["cancelOrder"]["order"]["state"] == "CANCELLED"


async def test_metadata_round_trips_exactly(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    metadata = {
        "customer": {"id": 42, "tags": ["a", "b"], "vip": True, "score": 1.5, "none": None},
        "note": "ünïcødé ✓",
    }
    payload = (
        await gql.execute(
            BY_MASS, input={"mass": {"amount": "1", "unit": "KG"}, "metadata": metadata}
        )
    )["data"]["createOrderByMass"]
    assert payload["order"]["metadata"] == metadata
    read = await gql.execute(
        "query($id: ID!) { order(id: $id) { metadata } }", id=payload["order"]["id"]
    )
    assert read["data"]["order"]["metadata"] == metadata
    no_metadata = await place_order(db, account, 1000)
    assert isinstance(no_metadata, OffsetOrder)
    empty = await gql.execute(
        "query($id: ID!) { order(id: $id) { metadata } }", id=gid("Order", no_metadata.id)
    )
    assert empty["data"]["order"]["metadata"] is None
    unknown = await gql.execute(
        "query($id: ID!) { order(id: $id) { id } }", id=gid("Order", uuid.uuid4())
    )
    assert unknown["data"]["order"] is None
