"""Limits before execution: rate, body size and query cost."""

import httpx

from app.config import Settings
from app.db import Database
from app.main import create_app
from tests.conftest import GraphQLClient

VIEWER = "{ viewer { mode } }"


async def test_a_key_over_its_rate_gets_429_with_retry_after(
    settings: Settings, db: Database, test_key: str, admin_key: str
) -> None:
    limited = settings.model_copy(update={"rate_limit_per_second": 0.1, "rate_limit_burst": 2})
    app = create_app(limited, database=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        gql = GraphQLClient(http, test_key)
        assert [(await gql.post(VIEWER)).status_code for _ in range(2)] == [200, 200]
        refused = await gql.post(VIEWER)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "10"
        assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        other_key = await GraphQLClient(http, admin_key).post(VIEWER)
        assert other_key.status_code == 200  # the budget is per key


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


async def test_every_response_reports_its_cost(gql: GraphQLClient) -> None:
    body = await gql.execute("{ viewer { mode account { slug } } }")
    assert body["extensions"]["cost"] == {"requested": 4, "maximum": 5000}
    paged = await gql.execute("{ orders(first: 10) { edges { node { id state } } } }")
    # orders 1 + 10 x (edges 1 + node 1 + id 1 + state 1)
    assert paged["extensions"]["cost"]["requested"] == 41


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
        assert (await gql.execute(query, n=99))["extensions"]["cost"]["requested"] == 298
        refused = await gql.execute(query, n=100)
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert refused["data"] is None
    assert refused["extensions"]["cost"] == {"requested": 301, "maximum": 300}


async def test_fragments_and_inline_fragments_are_costed(gql: GraphQLClient) -> None:
    body = await gql.execute(
        """query { orders(first: 5) { ...Page } node(id: "T3JkZXI6MQ==") { ... on Order { id } } }
        fragment Page on OrderConnection { edges { node { id } } }"""
    )
    # orders 1 + 5 x (edges, node, id) = 16; node 1 + id 1 = 2
    assert body["extensions"]["cost"]["requested"] == 18
