"""Real JavaScript clients against a real server: graphql-ws, Apollo Client 4 with GraphQLWsLink,
the legacy subscriptions-transport-ws, and the graphql-http spec audit.

The clients come from tests/clients (package-lock.json, installed by `make js-clients`); each
scenario is a Node script that reports JSON lines, and the assertions are here."""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningServer, launch

CLIENTS = Path(__file__).parents[1] / "clients"
SCENARIO_TIMEOUT_SECONDS = 90
NODE = shutil.which("node")


@pytest.fixture(scope="module", autouse=True)
def node_clients() -> None:
    """Skip without Node outside CI (with the reason printed); fail under CI=true."""
    if NODE is None:
        reason = "node is not installed: the JavaScript client tests need Node 20+"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (required under CI=true)")
        print(f"\nskipping JavaScript client tests: {reason}")
        pytest.skip(reason)
    if not (CLIENTS / "node_modules" / ".installed-stamp").exists():
        pytest.fail("the JavaScript clients are not installed: run `make js-clients`")


def run_scenario(
    script: str,
    on_waiting: Callable[[str], None] | None = None,
    **arguments: Any,
) -> Any:
    """Run tests/clients/<script> with `arguments` and return its result. When it reports
    `{"waiting": step}`, call `on_waiting(step)` and let it go on."""
    assert NODE is not None
    process = subprocess.Popen(
        [NODE, str(CLIENTS / script), json.dumps(arguments)],
        cwd=CLIENTS,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        for line in process.stdout:
            report = json.loads(line)
            if "waiting" in report:
                assert on_waiting is not None, report
                on_waiting(report["waiting"])
                process.stdin.write("go\n")
                process.stdin.flush()
            elif "result" in report:
                return report["result"]
            elif "failure" in report:
                pytest.fail(f"{script} failed: {report['failure']}")
        stderr = process.stderr.read() if process.stderr else ""
        pytest.fail(f"{script} exited {process.wait()} without a result:\n{stderr}")
    finally:
        try:
            process.wait(timeout=SCENARIO_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


def keys(server: RunningServer) -> dict[str, str]:
    return {
        "baseUrl": server.base_url,
        "key": server.demo_key("test", "standard"),
        "adminKey": server.demo_key("test", "admin"),
    }


@pytest.fixture
def sqlite_server(sqlite_template: Path, tmp_path: Path) -> Iterator[RunningServer]:
    """Only the Apollo and audit tests need a single database: they test the transport."""
    shutil.copyfile(sqlite_template, tmp_path / "test.db")
    with launch(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", tmp_path / "server.log") as server:
        yield server


def test_graphql_ws_client_receives_placed_then_fulfilled_and_completes(
    server: RunningServer,
) -> None:
    result = run_scenario("graphql_ws.mjs", scenario="subscribe", **keys(server))
    assert result["states"] == [[None, "PLACED"], ["PLACED", "FULFILLED"]]
    assert result["sequences"][0] < result["sequences"][1]
    assert result["ended"] == {"complete": True}
    assert result["closes"] == [{"code": 1000, "reason": "Normal Closure"}]


def test_graphql_ws_client_with_a_bad_key_is_closed_with_4403(server: RunningServer) -> None:
    result = run_scenario("graphql_ws.mjs", scenario="bad-key", **keys(server))
    assert result["ended"] == {"error": {"code": 4403, "reason": "Forbidden"}}
    assert result["changes"] == []


def test_graphql_ws_client_loses_its_socket_when_its_key_is_revoked(
    server: RunningServer,
) -> None:
    arguments = keys(server)
    result = run_scenario(
        "graphql_ws.mjs", scenario="revoked", **arguments, otherKey=arguments["key"]
    )
    assert result["statesBefore"] == [[None, "PLACED"], ["PLACED", "FULFILLED"]]
    assert result["ended"] == {"error": {"code": 4403, "reason": "The API key has been revoked."}}
    assert result["closedAfterMs"] < 4000  # checks run every 2 s
    assert result["changesAfterClose"] == 0
    assert result["againEnded"] == {"error": {"code": 4403, "reason": "Forbidden"}}


def test_graphql_ws_client_loses_its_socket_when_its_account_is_suspended(
    server: RunningServer, database_url: str
) -> None:
    def suspend(step: str) -> None:
        assert step == "suspend"
        environment = {**os.environ, "CG_DATABASE_URL": database_url}
        subprocess.run(
            [sys.executable, "-m", "app", "accounts", "suspend", "demo"],
            check=True,
            env=environment,
            capture_output=True,
            timeout=60,
        )

    arguments = keys(server)
    result = run_scenario(
        "graphql_ws.mjs", suspend, scenario="suspended", **arguments, otherKey=arguments["key"]
    )
    assert result["statesBefore"] == [[None, "PLACED"], ["PLACED", "FULFILLED"]]
    assert result["ended"] == {"error": {"code": 4403, "reason": "The account is suspended."}}
    assert result["closedAfterMs"] < 4000
    assert result["changesAfterClose"] == 0
    assert result["againEnded"] == {"error": {"code": 4403, "reason": "Forbidden"}}


def test_graphql_ws_client_answers_server_pings_and_keeps_streaming(
    sqlite_template: Path, tmp_path: Path
) -> None:
    shutil.copyfile(sqlite_template, tmp_path / "test.db")
    with launch(
        f"sqlite+aiosqlite:///{tmp_path / 'test.db'}",
        tmp_path / "server.log",
        CG_WS_PING_INTERVAL_SECONDS="0.2",
        CG_WS_PONG_TIMEOUT_SECONDS="1",
    ) as server:
        result = run_scenario("graphql_ws.mjs", scenario="pings", waitMs=2000, **keys(server))
    # About ten pings in two seconds, each answered by the client.
    assert result["pings"].count("from server") >= 5
    assert result["pings"].count("pong to server") == result["pings"].count("from server")
    assert result["closesBeforeDispose"] == []
    assert result["states"] == [[None, "PLACED"], ["PLACED", "FULFILLED"]]


def empty_portfolio(server: RunningServer) -> dict[str, str]:
    """A portfolio over one new project with no credits: its orders wait in PLACED."""
    admin = {"Authorization": f"Bearer {server.demo_key('test', 'admin')}"}

    def mutate(query: str, **variables: Any) -> Any:
        response = httpx.post(
            f"{server.base_url}/graphql",
            json={"query": query, "variables": variables},
            headers=admin,
        )
        body = response.json()
        assert "errors" not in body, body
        (payload,) = body["data"].values()
        assert payload["userErrors"] == [], payload
        return payload

    project = mutate(
        """mutation { createProject(input: {name: "Apollo test forest", type: REFORESTATION,
             registry: "Verra", registryId: "VCS-APOLLO", country: "BR"}) {
             project { id } userErrors { code message } } }"""
    )["project"]["id"]
    bundle = mutate(
        """mutation($project: ID!) { createBundle(input: {name: "Apollo test bundle",
             projectIds: [$project], unitPrice: {amount: "10.00", currency: "USD"}}) {
             bundle { id } userErrors { code message } } }""",
        project=project,
    )["bundle"]["id"]
    portfolio = mutate(
        """mutation($bundle: ID!) { createPortfolio(input: {name: "Apollo test portfolio",
             bundles: [{bundleId: $bundle, weight: "100"}]}) {
             portfolio { id } userErrors { code message } } }""",
        bundle=bundle,
    )["portfolio"]["id"]
    return {"projectId": project, "portfolioId": portfolio}


def test_apollo_watched_order_moves_to_fulfilled_through_the_cache_without_refetch(
    sqlite_server: RunningServer,
) -> None:
    result = run_scenario("apollo.mjs", **keys(sqlite_server), **empty_portfolio(sqlite_server))
    assert result["states"] == ["PLACED", "FULFILLED"]
    # One query over HTTP: the move to FULFILLED came from the subscription, not a refetch.
    assert result["httpOperations"] == ["CreateOrder", "Order"]
    assert result["eventStates"] == ["PLACED", "FULFILLED"]
    assert result["cachedOrder"]["state"] == "FULFILLED"
    # A refused document reaches the app as Apollo's GraphQL errors, with our code.
    assert result["refusal"] == {"name": "CombinedGraphQLErrors", "codes": ["BAD_REQUEST"]}


def test_legacy_subscriptions_transport_ws_client_receives_order_events(
    server: RunningServer,
) -> None:
    result = run_scenario("legacy_subscriptions.mjs", **keys(server))
    assert result["states"] == [[None, "PLACED"], ["PLACED", "FULFILLED"]]
    assert result["errors"] == []


def test_graphql_http_audit_passes_every_check(sqlite_server: RunningServer) -> None:
    results = run_scenario("http_audit.mjs", **keys(sqlite_server))
    failed = [result for result in results if result["status"] != "ok"]
    print(f"\ngraphql-http audit: {len(results) - len(failed)}/{len(results)} passed")
    assert failed == []
    assert len(results) == 61


def test_with_introspection_off_the_audit_fails_only_its_four_introspecting_checks(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """README: 61/61 with introspection on; with CG_INTROSPECTION=false the checks that send
    `{ __type(name: …) }` are refused (as they should be) and fail, the rest pass."""
    shutil.copyfile(sqlite_template, tmp_path / "test.db")
    with launch(
        f"sqlite+aiosqlite:///{tmp_path / 'test.db'}",
        tmp_path / "server.log",
        CG_INTROSPECTION="false",
    ) as server:
        results = run_scenario("http_audit.mjs", **keys(server))
    failed = [result for result in results if result["status"] != "ok"]
    print(f"\ngraphql-http audit, introspection off: {len(results) - len(failed)}/{len(results)}")
    print("\n".join(f"  {result['id']} {result['name']}" for result in failed))
    assert (len(results), len(failed)) == (61, 4)
    # the four whose document is `query ($id: String!) { __type(name: $id) { name } }`
    assert {result["id"] for result in failed} == {"2EA1", "28B9", "D6D5", "6A70"}
