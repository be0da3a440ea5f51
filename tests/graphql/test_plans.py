"""Compiled plans answer byte for byte what the executor answers, and leave it the rest."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.accounts.models import Mode
from app.config import Settings
from app.db import Database
from app.graphql import plans
from app.main import create_app
from tests.conftest import TEST_SECRET, counting_statements, make_account, make_key
from tests.offsets_fixtures import (
    TONNE,
    fulfil,
    place_one_tonne,
    place_order,
    principal_for,
    stock_of_tonnes,
)

FULFILLED = 5


@dataclass
class Twins:
    """Two servers over one database: compiled plans on, and off (the executor)."""

    planned: httpx.AsyncClient
    executed: httpx.AsyncClient
    key: str
    other_key: str
    db: Database

    async def answers(self, query: str, key: str | None = None, **variables: Any) -> bytes:
        """The planned answer's bytes, asserted equal to the executor's."""
        headers = {"Authorization": f"Bearer {key or self.key}"}
        body = {"query": query, "variables": variables}
        planned = await self.planned.post("/graphql", json=body, headers=headers)
        executed = await self.executed.post("/graphql", json=body, headers=headers)
        assert planned.status_code == executed.status_code
        assert planned.content == executed.content, (planned.content, executed.content)
        return planned.content


def _settings(database_url: str, compiled_plans: bool) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=TEST_SECRET,
        run_worker=False,
        rate_limit_per_second=0,
        response_cache=False,  # each answer executed (or planned), never served from a cache
        compiled_plans=compiled_plans,
        ws_access_check_seconds=600.0,
    )


async def _twins(database_url: str, db: Database) -> AsyncIterator[Twins]:
    account = await make_account(db)
    _, key = await make_key(db, account, Mode.TEST)
    principal = principal_for(account)
    await stock_of_tonnes(db, principal, [3, 10])  # two batches: some orders draw on both
    for _ in range(FULFILLED - 1):
        await place_one_tonne(db, principal)
    # One with every optional field set: text, JSON metadata, an idempotency key.
    await place_order(
        db,
        account,
        TONNE,
        description="Retired for the Q3 shipments — “quoted” text",
        metadata={"ref": "A-1", "lines": [1, 2.5, None], "nested": {"ok": True}},
        idempotency_key="plans-1",
    )
    await fulfil_with(db)
    await place_one_tonne(db, principal)  # PLACED: no certificate, no allocations
    other = await make_account(db, slug="other", name="Other Ltd")
    _, other_key = await make_key(db, other, Mode.TEST)
    await stock_of_tonnes(db, principal_for(other), [5])
    await place_one_tonne(db, principal_for(other))
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(
                app=create_app(_settings(database_url, planned), database=db)
            ),
            base_url="http://testserver",
        )
        for planned in (True, False)
    ]
    try:
        yield Twins(clients[0], clients[1], key, other_key, db)
    finally:
        for client in clients:
            await client.aclose()


async def fulfil_with(db: Database) -> None:
    await fulfil(db, _settings("unused", True))


@pytest.fixture
async def twins(database_url: str, db: Database) -> AsyncIterator[Twins]:
    async for made in _twins(database_url, db):
        yield made


@pytest.fixture
def plan_runs(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every run of a compiled plan (whether or not the executor then had to answer)."""
    runs: list[object] = []
    original = plans.Plan.run

    async def counted(self: plans.Plan, *args: Any) -> dict[str, Any]:
        runs.append(self)
        return await original(self, *args)

    monkeypatch.setattr(plans.Plan, "run", counted)
    return runs


NESTED = """{ orders(first: 20) { edges { node { id state createdAt
  mass { amount unit } price { amount currency }
  certificate { id publicUrl }
  allocations { mass { amount } project { id name } bundle { id name }
    creditBatch { vintage } } } } } }"""


async def test_the_nested_read_is_planned_and_answers_as_the_executor(
    twins: Twins, plan_runs: list[object]
) -> None:
    body = await twins.answers(NESTED)
    assert len(plan_runs) == 1
    assert body.count(b'"node"') == FULFILLED + 1
    assert b'"certificate":null' in body
    assert b'"allocations":[]' in body


async def test_every_plannable_field_with_typenames_answers_as_the_executor(
    twins: Twins, plan_runs: list[object]
) -> None:
    await twins.answers("""{ __typename orders { __typename totalCount
      pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor }
      edges { __typename cursor node { __typename id state createdAt fulfilledAt cancelledAt
        certificateId description metadata idempotencyKey callbackUrl
        mass { __typename amount unit } price { __typename amount currency }
        certificate { __typename id issuedAt publicUrl downloadUrl }
        projects { id name type registry registryId country description createdAt }
        allocations { __typename serialRange mass { amount unit }
          project { __typename id name type registry registryId country description createdAt }
          bundle { id name description createdAt unitPrice { amount currency } }
          creditBatch { id vintage serialPrefix createdAt quantity { amount unit }
            remaining { amount unit } } } } } } }""")
    assert len(plan_runs) == 1


async def test_aliases_and_fragments_answer_as_the_executor(
    twins: Twins, plan_runs: list[object]
) -> None:
    await twins.answers("""
      query { newest: orders(first: 2) { ...page } older: orders(first: 3) {
        edges { n: node { key: id ... on Order { m: mass { a: amount } } ...order } } } }
      fragment page on OrderConnection { edges { node { ...order state } } count: totalCount }
      fragment order on Order { id mass { unit } state
        allocations { p: project { n: name } ... { bundle { name } } } }""")
    assert len(plan_runs) == 1


async def test_skip_and_include_literal_and_from_variables(
    twins: Twins, plan_runs: list[object]
) -> None:
    query = """query($with: Boolean!, $without: Boolean!) { orders(first: 3) { edges { node {
      id @include(if: $with) state @skip(if: $without) mass @include(if: true) { amount }
      ... @skip(if: $with) { price { amount } } allocations @include(if: false) { serialRange }
    } } } }"""
    for switches in ((True, True), (True, False), (False, True), (False, False)):
        await twins.answers(query, **{"with": switches[0], "without": switches[1]})
    assert len(plan_runs) == 4


async def test_pages_and_cursors_through_variables(twins: Twins, plan_runs: list[object]) -> None:
    query = """query($first: Int, $after: String, $last: Int, $before: String) {
      orders(first: $first, after: $after, last: $last, before: $before) {
        totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        edges { cursor node { id } } } }"""
    first = orjson.loads(await twins.answers(query, first=2))
    cursor = first["data"]["orders"]["pageInfo"]["endCursor"]
    await twins.answers(query, first=2, after=cursor)
    await twins.answers(query, last=2, before=cursor)
    await twins.answers(query, last=1)
    empty = await twins.answers(query, first=0)
    assert b'"edges":[]' in empty
    assert b'"startCursor":null' in empty
    assert len(plan_runs) == 5


async def test_another_principal_sees_only_its_own_orders(
    twins: Twins, plan_runs: list[object]
) -> None:
    mine = await twins.answers(NESTED)
    theirs = await twins.answers(NESTED, key=twins.other_key)
    assert theirs.count(b'"node"') == 1
    assert mine.count(b'"node"') == FULFILLED + 1
    assert len(plan_runs) == 2


async def test_a_planned_read_runs_no_more_statements(twins: Twins) -> None:
    headers = {"Authorization": f"Bearer {twins.key}"}
    counts = []
    for client in (twins.planned, twins.executed):
        await client.post("/graphql", json={"query": NESTED}, headers=headers)  # auth cached
        with counting_statements(twins.db) as statements:
            await client.post("/graphql", json={"query": NESTED}, headers=headers)
        counts.append(len(statements))
    assert counts[0] == counts[1]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(
            "{ orders(filter: {states: [PLACED]}) { edges { node { id } } } }", id="filter"
        ),
        pytest.param(
            "query($f: OrdersFilter) { orders(filter: $f) { edges { node { id } } } }",
            id="filter-variable",
        ),
        pytest.param("{ orders { edges { node { id portfolio { name } } } } }", id="no-reader"),
        pytest.param("{ orders { edges { node { history { state } } } } }", id="no-reader-list"),
        pytest.param("{ viewer { mode } }", id="other-root"),
        pytest.param("{ __schema { queryType { name } } }", id="introspection"),
        pytest.param('{ node(id: "T3JkZXI6eA==") { id } }', id="node"),
    ],
)
async def test_what_no_plan_answers_runs_the_executor(
    twins: Twins, plan_runs: list[object], query: str
) -> None:
    await twins.answers(query)
    assert plan_runs == []


async def test_a_plan_that_raises_leaves_the_answer_and_its_error_to_the_executor(
    twins: Twins, plan_runs: list[object]
) -> None:
    body = await twins.answers("{ orders(first: 500) { edges { node { id } } } }")
    assert b"first must be between 0 and 100" in body
    assert len(plan_runs) == 1  # tried, then the executor answered
    await twins.answers('{ orders(after: "nonsense") { edges { node { id } } } }')


async def test_mutations_are_never_planned(twins: Twins, plan_runs: list[object]) -> None:
    headers = {"Authorization": f"Bearer {twins.key}"}
    response = await twins.planned.post(
        "/graphql",
        json={"query": 'mutation { cancelOrder(input: {id: "x"}) { userErrors { code } } }'},
        headers=headers,
    )
    assert response.status_code == 200
    assert plan_runs == []


# The property: any selection of the plannable shape, planned, answers what the executor does.
ORDER_LEAVES = [
    "id",
    "state",
    "createdAt",
    "fulfilledAt",
    "cancelledAt",
    "certificateId",
    "description",
    "metadata",
    "idempotencyKey",
    "callbackUrl",
    "__typename",
]
OBJECTS: dict[str, list[str]] = {
    "mass": ["amount", "unit", "__typename"],
    "price": ["amount", "currency"],
    "certificate": ["id", "issuedAt", "publicUrl", "downloadUrl"],
}
ALLOCATION: dict[str, list[str]] = {
    "project": ["id", "name", "type", "registry", "country", "createdAt"],
    "bundle": ["id", "name", "description", "__typename"],
    "creditBatch": ["id", "vintage", "serialPrefix", "createdAt"],
    "mass": ["amount", "unit"],
}
NAMES = st.sampled_from(["a", "b", "x1", "second"])


@st.composite
def _selection(draw: st.DrawFn, fields: list[str], objects: dict[str, list[str]]) -> str:
    """Some of `fields` and `objects`, each maybe aliased, maybe inside an inline fragment."""
    chosen = draw(st.lists(st.sampled_from(fields), max_size=5))
    parts = []
    for name in chosen:
        alias = draw(st.none() | NAMES)
        # An alias names one field only (`aState: state`): a valid document never gives
        # one response key two different fields.
        aliased = alias and name != "__typename"
        parts.append(f"{alias}{name[0].upper()}{name[1:]}: {name}" if aliased else name)
    for name in draw(st.lists(st.sampled_from(sorted(objects)), max_size=3, unique=True)):
        inner = draw(st.lists(st.sampled_from(objects[name]), min_size=1, max_size=4))
        parts.append(f"{name} {{ {' '.join(inner)} }}")
    if not parts:
        parts = ["__typename"]
    if draw(st.booleans()):
        on = draw(st.sampled_from(["Order", "Allocation"]))
        parts = [f"... on {on} {{ {parts[0]} }}", *parts[1:]]
    return " ".join(parts)


@st.composite
def nested_reads(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    node = draw(_selection(ORDER_LEAVES, OBJECTS)).replace("... on Allocation", "... on Order")
    if draw(st.booleans()):
        allocation = draw(_selection(["serialRange", "__typename"], ALLOCATION)).replace(
            "... on Order", "... on Allocation"
        )
        node += f" allocations {{ {allocation} }}"
    if draw(st.booleans()):
        node += " projects { name id }"
    connection = f"edges {{ cursor node {{ {node} }} }}"
    if draw(st.booleans()):
        connection += " totalCount pageInfo { hasNextPage endCursor }"
    variables: dict[str, Any] = {"first": draw(st.integers(0, 8))}
    if draw(st.booleans()):
        connection = f"...page @include(if: $on) {connection}"
        variables["on"] = draw(st.booleans())
        fragment = "fragment page on OrderConnection { totalCount }"
        query = f"query($first: Int, $on: Boolean!) {{ orders(first: $first) {{ {connection} }} }}"
        return f"{query} {fragment}", variables
    return f"query($first: Int) {{ orders(first: $first) {{ {connection} }} }}", variables


def test_any_plannable_selection_answers_as_the_executor(database_url: str) -> None:
    with asyncio.Runner() as runner:
        db = Database.from_url(database_url)
        made = _twins(database_url, db)
        twins = runner.run(anext(made))
        planned_runs = 0

        @hypothesis_settings(
            max_examples=60,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(read=nested_reads())
        def planned_equals_executed(read: tuple[str, dict[str, Any]]) -> None:
            query, variables = read
            body = runner.run(twins.answers(query, **variables))
            assert b'"errors"' not in body, (query, body)

        original = plans.Plan.run

        async def counted(self: plans.Plan, *args: Any) -> dict[str, Any]:
            nonlocal planned_runs
            planned_runs += 1
            return await original(self, *args)

        plans.Plan.run = counted  # type: ignore[method-assign]
        try:
            planned_equals_executed()
        finally:
            plans.Plan.run = original  # type: ignore[method-assign]
            runner.run(made.aclose())
            runner.run(db.dispose())
        assert planned_runs >= 60  # every example went through a plan
