"""CG_INTROSPECTION: on by default; off, neither introspection nor "Did you mean" suggestions."""

from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from app.db import Database
from app.main import create_app
from tests.conftest import GraphQLClient

SCHEMA = "{ __schema { queryType { name } } }"
TYPE = '{ __type(name: "Viewer") { fields { name } } }'
MISSPELLED_FIELD = "{ viewr { mode } }"
ENUM_VARIABLE = "query($state: OrderState!) { orders(filter: {states: [$state]}) { totalCount } }"


@pytest.fixture
async def private(settings: Settings, db: Database, test_key: str) -> AsyncIterator[GraphQLClient]:
    """A client of an app started with CG_INTROSPECTION=false."""
    app = create_app(settings.model_copy(update={"introspection": False}), database=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GraphQLClient(http, test_key)


def messages(body: dict) -> str:  # type: ignore[type-arg]
    return " ".join(error["message"] for error in body.get("errors", []))


def test_introspection_is_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CG_INTROSPECTION", raising=False)
    assert Settings().introspection is True
    monkeypatch.setenv("CG_INTROSPECTION", "false")
    assert Settings().introspection is False


async def test_introspection_and_suggestions_are_served_by_default(gql: GraphQLClient) -> None:
    assert (await gql.execute(SCHEMA))["data"]["__schema"]["queryType"]["name"] == "Query"
    fields = (await gql.execute(TYPE))["data"]["__type"]["fields"]
    assert {"name": "mode"} in fields
    assert "Did you mean 'viewer'?" in messages(await gql.execute(MISSPELLED_FIELD))
    typo = await gql.execute(ENUM_VARIABLE, state="PLACD")
    assert "Did you mean the enum value 'PLACED'?" in messages(typo)


async def test_switched_off_introspection_is_refused(private: GraphQLClient) -> None:
    for query in (SCHEMA, TYPE):
        body = await private.execute(query)
        assert "data" not in body or body["data"] is None
        assert "introspection has been disabled" in messages(body)


async def test_switched_off_errors_suggest_nothing(private: GraphQLClient) -> None:
    field = await private.execute(MISSPELLED_FIELD)
    assert messages(field) == "Cannot query field 'viewr' on type '<hidden>'."
    enum_value = await private.execute(ENUM_VARIABLE, state="PLACD")
    assert "PLACD" in messages(enum_value)
    assert "Did you mean" not in messages(enum_value)
    assert "PLACED" not in messages(enum_value)
    assert "OrderState" not in messages(enum_value)


async def test_switched_off_validation_messages_name_no_schema_type(
    gql: GraphQLClient, private: GraphQLClient
) -> None:
    probes = {
        "{ viewer }": "Field 'viewer' of type '<hidden>' must have a selection of subfields.",
        "{ viewer { mode { x } } }": "Field 'mode' must not have a selection since type "
        "'<hidden>' has no subfields.",
        "{ deviceEmissions { serialNumber } }": "Argument 'deviceEmissions(serialNumber:)' of "
        "type '<hidden>' is required, but it was not provided.",
        "{ orders(nope: 1) { totalCount } }": "Unknown argument 'nope' on field 'orders'.",
    }
    for query, masked in probes.items():
        assert messages(await private.execute(query)).startswith(masked), query
        # with introspection on, the same messages name the types
        assert "<hidden>" not in messages(await gql.execute(query))
    assert "'Viewer!'" in messages(await gql.execute("{ viewer }"))
    assert "'Query.orders'" in messages(await gql.execute("{ orders(nope: 1) { totalCount } }"))


async def test_switched_off_ordinary_operations_still_run(private: GraphQLClient) -> None:
    body = await private.execute("{ __typename viewer { mode } }")
    assert body["data"] == {"__typename": "Query", "viewer": {"mode": "TEST"}}


async def test_the_switch_is_per_app_though_the_schema_and_its_caches_are_shared(
    gql: GraphQLClient, private: GraphQLClient
) -> None:
    # Same documents, both apps, alternately: a validation cached for one must not leak.
    for _ in range(2):
        assert "errors" not in await gql.execute(SCHEMA)
        assert "introspection has been disabled" in messages(await private.execute(SCHEMA))
        assert "Did you mean" in messages(await gql.execute(MISSPELLED_FIELD))
        assert "Did you mean" not in messages(await private.execute(MISSPELLED_FIELD))
