"""The rules every mutation request follows: an error in one root field never hides what the
fields before it committed, and documents are unambiguous."""

import pytest
from sqlalchemy import func
from sqlmodel import select

from app.accounts import service as accounts
from app.accounts.models import Account, ApiKey
from app.db import Database
from app.offsets.models import OffsetOrder
from tests.conftest import GraphQLClient
from tests.offsets_fixtures import seed_catalog

THREE_FIELDS = """mutation {
  a: createOrderByMass(input: {mass: {amount: "1", unit: KG}}) { order { id state } }
  k: createApiKey(input: {name: "second"}) { apiKey { id } secret }
  b: createOrderByMass(input: {mass: {amount: "2", unit: KG}}) { order { id state } }
}"""


async def _count(db: Database, model: type) -> int:
    async with db.session() as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())


async def test_a_failing_root_field_keeps_the_results_of_the_fields_that_committed(
    client: object,
    db: Database,
    account: Account,
    admin_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await seed_catalog(db, account)
    gql = GraphQLClient(client, admin_key)  # type: ignore[arg-type]
    keys_before = await _count(db, ApiKey)

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug in the middle field")

    monkeypatch.setattr(accounts, "create_api_key_as", broken)
    body = await gql.execute(THREE_FIELDS)

    assert body["data"]["a"]["order"]["state"] == "PLACED"
    assert body["data"]["k"] is None
    assert body["data"]["b"]["order"]["state"] == "PLACED"
    assert [error["path"] for error in body["errors"]] == [["k"]]
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_ERROR"
    assert await _count(db, OffsetOrder) == 2
    assert await _count(db, ApiKey) == keys_before


async def test_a_malformed_literal_anywhere_runs_nothing(
    db: Database, account: Account, admin_key: str, client: object
) -> None:
    await seed_catalog(db, account)
    gql = GraphQLClient(client, admin_key)  # type: ignore[arg-type]
    keys_before = await _count(db, ApiKey)
    body = await gql.execute(THREE_FIELDS.replace('amount: "2"', 'amount: "1E+1000000"'))

    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert await _count(db, OffsetOrder) == 0
    assert await _count(db, ApiKey) == keys_before


TWO_OPERATIONS = (
    'query A { viewer { mode } } mutation B { createApiKey(input: {name: "x"}) { secret } }'
)


async def test_several_operations_need_an_operation_name(gql: GraphQLClient) -> None:
    response = await gql.http.post(
        "/graphql",
        json={"query": TWO_OPERATIONS},
        headers={**gql.headers, "Accept": "application/graphql-response+json"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    named = await gql.http.post(
        "/graphql", json={"query": TWO_OPERATIONS, "operationName": "A"}, headers=gql.headers
    )
    assert named.json()["data"] == {"viewer": {"mode": "TEST"}}
