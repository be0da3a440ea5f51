"""What every request passes before it runs, and what the adversarial review of hostile input
found: each refusal is a typed error, in milliseconds, that changes nothing."""

import base64
import time
import uuid

import pytest
from sqlalchemy import text

from app.db import Database
from tests.conftest import GraphQLClient

FLIGHT = """mutation($i: EstimateFlightInput!) {
  estimateFlight(input: $i) { estimate { id } userErrors { code field message } } }"""
BY_MASS = """mutation($i: CreateOrderByMassInput!) {
  createOrderByMass(input: $i) { order { id mass { amount } } userErrors { code field } } }"""


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


async def _post(gql: GraphQLClient, body: bytes) -> dict:  # type: ignore[type-arg]
    started = time.perf_counter()
    response = await gql.http.post(
        "/graphql", content=body, headers={**gql.headers, "Content-Type": "application/json"}
    )
    assert time.perf_counter() - started < 1.0  # generous: the machine is shared
    assert response.status_code in (200, 400), response.text
    return response.json()  # type: ignore[no-any-return]


def _code(body: dict) -> str:  # type: ignore[type-arg]
    return body["errors"][0]["extensions"]["code"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        # Deeper than Python's recursion: refused, not a RecursionError.
        (
            b'{"query":"query($a: JSON) { viewer { mode } }","variables":{"a":'
            + b"[" * 1000
            + b"]" * 1000
            + b"}}",
            "BAD_REQUEST",
        ),
        (b'{"query":"{"}', "BAD_REQUEST"),
        (b'{"query":"{ orders(first: ' + b"9" * 5000 + b') { totalCount } }"}', "BAD_REQUEST"),
        (b'{"query":"subscription { orderStatusChanged { sequence } }"}', "BAD_REQUEST"),
        (b'{"query":"{ product(productId: \\"' + b"x" * 70_000 + b'\\") { id } }"}', "BAD_REQUEST"),
    ],
)
async def test_malformed_requests_get_a_code_and_no_traceback(
    gql: GraphQLClient, body: bytes, code: str
) -> None:
    answer = await _post(gql, body)
    assert answer.get("data") is None
    assert _code(answer) == code
    assert "Traceback" not in str(answer)
    assert "recursion" not in str(answer)


async def test_lists_longer_than_an_input_takes_are_refused_before_coercion(
    gql: GraphQLClient,
) -> None:
    legs = [{"from": "LHR", "to": "JFK"}] * 20_000
    started = time.perf_counter()
    body = await gql.execute(FLIGHT, i={"legs": legs})
    assert time.perf_counter() - started < 1.0
    assert _code(body) == "INVALID_INPUT"
    assert "$i.legs has 20,000 items; at most 100" in body["errors"][0]["message"]
    within = await gql.execute(FLIGHT, i={"legs": [{"from": "LHR", "to": "JFK"}] * 51})
    assert within["data"]["estimateFlight"]["userErrors"][0]["field"] == "legs"


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor("[" * 900 + "]" * 900),
        _cursor('["2026-01-01T00:00:00+00:00", 5]'),
        _cursor(f'["0001-01-01T00:00:00+01:00", "{uuid.uuid4()}"]'),
        _cursor(f'["9999-12-31T23:59:59-23:00", "{uuid.uuid4()}"]'),
        _cursor(f'["2026-01-01T00:00:00", "{uuid.uuid4()}"]'),
        "x" * 1000,
    ],
)
async def test_forged_cursors_are_malformed_not_a_crash(gql: GraphQLClient, cursor: str) -> None:
    for argument in ("after", "before"):
        body = await gql.execute(
            f"query($c: String) {{ orders({argument}: $c) {{ totalCount }} }}", c=cursor
        )
        assert body["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": argument}


async def test_decimals_are_never_rounded_on_the_way_in(gql: GraphQLClient) -> None:
    floats = await _post(
        gql,
        b'{"query":"mutation($i: CreateOrderByMassInput!) { createOrderByMass(input: $i)'
        b' { order { id } } }","variables":{"i":{"mass":{"amount":1.0000000000000001,'
        b'"unit":"T"}}}}',
    )
    assert floats["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": "mass.amount"}
    literal = await gql.execute(
        "mutation { createOrderByMass(input: {mass: {amount: 1.0000000000000001, unit: KG}})"
        " { order { id } userErrors { code field } } }"
    )
    assert literal["data"]["createOrderByMass"]["userErrors"] == [
        {"code": "INVALID_INPUT", "field": "mass.amount"}
    ]
    digits = await gql.execute(BY_MASS, i={"mass": {"amount": "0." + "9" * 33, "unit": "KG"}})
    assert _code(digits) == "INVALID_INPUT"


async def test_metadata_that_older_code_stored_still_reads_back(
    db: Database, gql: GraphQLClient, account: object
) -> None:
    from tests.offsets_fixtures import seed_catalog

    await seed_catalog(db, account)  # type: ignore[arg-type]
    created = await gql.execute(BY_MASS, i={"mass": {"amount": "1", "unit": "KG"}})
    order_id = created["data"]["createOrderByMass"]["order"]["id"]
    stored = '{"big": 18446744073709551616, "s": "\\ud800", "\\udfff": 1}'
    update = (
        "UPDATE offset_order SET metadata = CAST(:m AS json)"
        if db.engine.dialect.name == "postgresql"
        else "UPDATE offset_order SET metadata = :m"
    )
    async with db.transaction() as session:
        await session.exec(text(update).bindparams(m=stored))

    body = await gql.execute("query($id: ID!) { order(id: $id) { metadata } }", id=order_id)
    assert body["data"]["order"]["metadata"] == {
        "big": "18446744073709551616",
        "s": "\ufffd",
        "\ufffd": 1,
    }


async def test_node_of_the_interface_itself_is_null_not_an_error(gql: GraphQLClient) -> None:
    for raw in ("Node:x", f"Node:{uuid.uuid4()}", "OrderStatusChange:x", "Subscription:x"):
        node_id = base64.b64encode(raw.encode()).decode()
        body = await gql.execute("query($i: ID!) { node(id: $i) { id } }", i=node_id)
        assert body == {"data": {"node": None}, "extensions": body["extensions"]}, raw


@pytest.mark.parametrize(
    ("method", "headers", "content", "status"),
    [
        ("PUT", {}, b"{}", 405),
        ("POST", {"Content-Type": "text/plain"}, b"{}", 415),
        ("POST", {"Content-Type": "application/json", "Accept": "application/xml"}, b"{}", 406),
        ("GET", {"Accept": "application/json"}, None, 405),
    ],
)
async def test_http_refusals_carry_a_code(
    gql: GraphQLClient, method: str, headers: dict[str, str], content: bytes | None, status: int
) -> None:
    url = "/graphql?query=mutation%20%7B%20__typename%20%7D" if method == "GET" else "/graphql"
    response = await gql.http.request(
        method, url, content=content, headers={**gql.headers, **headers}
    )
    assert response.status_code == status
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
