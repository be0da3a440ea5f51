"""Hostile input, one row per case of issue 7 (tests/graphql/hostile_cases.py), on SQLite and
PostgreSQL, in-process.

Every row asserts, besides its own expectation:
- the answer came in under HOSTILE_BUDGET_MS of wall time (refused before any real work);
- when the answer carries an error, no row of any table changed;
- the server still answers a cheap query afterwards.
"""

import time

import httpx
import pytest
from sqlalchemy import update

from app.accounts.models import Account
from app.config import Settings
from app.db import Database
from app.offsets.models import OffsetOrder
from tests.graphql.hostile import World, b64, changed_tables, fingerprint, seed_world
from tests.graphql.hostile_cases import (
    CASES,
    HOSTILE_BUDGET_MS,
    ORDERS,
    USER_ERRORS,
    VIEWER,
    Case,
    assert_no_internal_error,
    body,
    has_errors,
    json_of,
    with_ids,
)
from tests.offsets_fixtures import gid

RESPONSIVE_MS = 1_000
# Three mutations that commit on SQLite (synchronous=FULL: an fsync each) cannot be re-sent to
# time them again; a freeze (issue 7 saw 20-30 s) still shows against this bound.
COMMITTING_REQUEST_MS = 5_000


def _with_ids(content: bytes, world: World) -> bytes:
    return with_ids(content, gid("Project", world.catalog.forest))


@pytest.fixture
async def world(db: Database, settings: Settings, account: Account) -> World:
    return await seed_world(db, settings, account)


async def post(client: httpx.AsyncClient, key: str, content: bytes) -> tuple[httpx.Response, float]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    started = time.perf_counter()
    response = await client.post("/graphql", content=content, headers=headers)
    return response, (time.perf_counter() - started) * 1000


async def assert_responsive(client: httpx.AsyncClient, key: str) -> None:
    # A frozen server shows here; the tight bound on a cheap query is tests/e2e's, on a real
    # server. Best of two, as elsewhere: a shared CPU can delay one answer, not a frozen loop.
    timings = []
    for _ in range(2):
        response, elapsed_ms = await post(client, key, body(VIEWER))
        assert response.status_code == 200, response.text
        assert response.json()["data"]["viewer"]["mode"] == "TEST"
        timings.append(elapsed_ms)
        if elapsed_ms < RESPONSIVE_MS:
            return
    raise AssertionError(f"cheap query took {min(timings):.0f} ms twice")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_hostile_input_is_refused_fast_and_changes_nothing(
    db: Database, client: httpx.AsyncClient, world: World, case: Case
) -> None:
    await assert_responsive(client, world.admin_key)  # warm: the first request builds caches
    before = await fingerprint(db)
    problems = []
    started = time.perf_counter()
    try:
        response, elapsed_ms = await post(client, world.admin_key, _with_ids(case.content, world))
    except Exception as error:  # what a real server would answer with HTTP 500
        elapsed_ms = (time.perf_counter() - started) * 1000
        response = None
        problems.append(f"the app raised {type(error).__name__}: {str(error)[:200]} (HTTP 500)")
    after = await fingerprint(db)
    payload = None
    if response is not None:
        try:
            case.expect(response)
        except AssertionError as error:
            problems.append(str(error))
        try:
            payload = response.json()
        except ValueError:
            payload = None
    if elapsed_ms >= HOSTILE_BUDGET_MS and response is not None and before == after:
        # Time it again: on a shared machine one answer can wait for the CPU; a request that
        # is really slow is slow twice. (Only when it wrote nothing, so sending it twice is
        # harmless.)
        _, again_ms = await post(client, world.admin_key, _with_ids(case.content, world))
        elapsed_ms = min(elapsed_ms, again_ms)
        after = await fingerprint(db)
    if elapsed_ms >= HOSTILE_BUDGET_MS:
        problems.append(f"took {elapsed_ms:.0f} ms (budget {HOSTILE_BUDGET_MS} ms)")
    if has_errors(payload) and before != after:
        problems.append(f"answered an error but wrote {changed_tables(before, after)}")
    try:
        await assert_responsive(client, world.admin_key)
    except AssertionError as error:
        problems.append(f"not responsive afterwards: {error}")
    assert not problems, "\n".join(problems)


ORDER_A = f"""a: createOrderByMass(input: {{mass: {{amount: "1", unit: KG}}}}) {{
    order {{ id }} {USER_ERRORS} }}"""
KEY_K = f'k: createApiKey(input: {{name: "x"}}) {{ secret {USER_ERRORS} }}'
SUBACCOUNT_K = (
    f'k: createSubaccount(input: {{name: "x"}}) {{ secret: subaccount {{ id }} {USER_ERRORS} }}'
)
FAILING_B = {
    # The issue's repro: refused while validating the literal, or while executing b.
    "a literal 1E+1000000 kg": 'createOrderByMass(input: {mass: {amount: "1E+1000000", unit: KG}})',
    # Valid documents whose last field fails only when it runs.
    "a callbackUrl that is not a URL": (
        'createOrderByMass(input: {mass: {amount: "1", unit: KG}, callbackUrl: "http://[::1/"})'
    ),
    "a portfolio id of no type of ours": (
        'createOrderByMass(input: {mass: {amount: "1", unit: KG}, '
        f'portfolioId: "{b64("Foo:bar")}"}})'
    ),
}


@pytest.mark.parametrize("failing", list(FAILING_B), ids=list(FAILING_B))
@pytest.mark.parametrize("admin", [True, False], ids=["admin key", "plain key"])
async def test_an_error_in_one_root_mutation_field_hides_none_of_the_fields_before_it(
    db: Database, client: httpx.AsyncClient, world: World, failing: str, admin: bool
) -> None:
    """`a` orders 1 kg, `k` creates a key (admin) or a subaccount (plain key; a plain key's
    createApiKey would be refused, which is the next case), `b` fails. Whatever committed is in
    the response: an order or a key written while the answer hides it is the bug of issue 7 (a
    lost secret, a double order on retry)."""
    k_field = KEY_K if admin else SUBACCOUNT_K
    document = f"mutation {{\n  {ORDER_A}\n  {k_field}\n  b: {FAILING_B[failing]} {{\n"
    document += f"    order {{ id }} {USER_ERRORS} }}\n}}"
    key = world.admin_key if admin else world.plain_key
    before = await fingerprint(db)
    response, elapsed_ms = await post(client, key, body(document))
    after = await fingerprint(db)
    payload = json_of(response)
    assert_no_internal_error(response, payload)
    assert response.status_code in (200, 400), payload
    data = payload.get("data") or {}
    order_shown = bool(((data.get("a") or {}).get("order") or {}).get("id"))
    k_shown = bool((data.get("k") or {}).get("secret"))
    k_table = "api_key" if admin else "subaccount"
    # What was written is exactly what the answer shows.
    assert after["offset_order"][0] - before["offset_order"][0] == int(order_shown), payload
    assert after[k_table][0] - before[k_table][0] == int(k_shown), payload
    # b failed, and only b.
    b_user_errors = (data.get("b") or {}).get("userErrors") or []
    request_errors = [e for e in payload.get("errors") or [] if not e.get("path")]
    field_errors = [e for e in payload.get("errors") or [] if e.get("path")]
    assert b_user_errors or request_errors or field_errors, payload
    assert all(e["path"][0] == "b" for e in field_errors), payload
    if not request_errors:
        # The document was valid, so a and k ran and must show what they did.
        assert order_shown, payload
        assert k_shown, payload
    # Three mutations in one request: a freeze shows, the tight bound is the table rows'.
    assert elapsed_ms < COMMITTING_REQUEST_MS, f"took {elapsed_ms:.0f} ms"


async def test_metadata_stored_beyond_the_range_by_old_code_still_reads_back(
    db: Database, client: httpx.AsyncClient, world: World
) -> None:
    # What the old code let through: {"n": 2**64} stored; it broke every listing for good.
    async with db.transaction() as session:
        await session.execute(
            update(OffsetOrder.__table__).values(  # type: ignore[arg-type]
                metadata={"n": 18_446_744_073_709_551_616, "f": 1.5}
            )
        )
    response, _ = await post(client, world.admin_key, body(ORDERS))
    payload = json_of(response)
    assert_no_internal_error(response, payload)
    assert response.status_code == 200, payload
    assert not payload.get("errors"), payload
    nodes = [edge["node"] for edge in payload["data"]["orders"]["edges"]]
    assert nodes, payload
    for node in nodes:
        assert node["metadata"] is not None, payload
        assert str(node["metadata"]["n"]) == "18446744073709551616", payload
