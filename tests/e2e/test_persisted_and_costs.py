"""Persisted operations and cost buckets on real server processes sharing Redis, and the
trusted-documents mode over HTTP and WebSocket."""

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import RunningServer, launch
from tests.e2e.test_subscriptions import (
    CREATE,
    SUBSCRIPTION,
    create_order,
    next_change,
    open_transport_ws,
    receive,
    subscribe,
    ws_url,
)


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def persisted(document: str) -> str:
    return json.dumps({"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}})


@pytest.fixture
def two_servers(
    database_url: str,
    redis_url: str,
    tmp_path: Path,
) -> Iterator[tuple[RunningServer, RunningServer]]:
    limits = {
        "CG_REDIS_URL": redis_url,
        # Shared limits and documents are tested, not the give-up on a slow Redis: at the 0.1 s
        # default one slow answer on a loaded machine would make a process go it alone for 5 s.
        "CG_REDIS_TIMEOUT_SECONDS": "5",
        "CG_RATE_LIMIT_PER_SECOND": "1",
        "CG_RATE_LIMIT_BURST": "60",
    }
    with (
        launch(database_url, tmp_path / "a.log", CG_RUN_WORKER="false", **limits) as a,
        launch(database_url, tmp_path / "b.log", **limits) as b,
    ):
        yield a, b


async def test_apq_documents_and_cost_buckets_are_shared_by_servers_through_redis(
    two_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, second = two_servers
    key = first.demo_key("test", "standard")
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    document = (
        f"query Orders {{ orders(first: 40) {{ edges {{ node {{ id }} }} }} }} # {uuid.uuid4()}"
    )
    async with httpx.AsyncClient() as http:
        miss = await http.get(
            f"{second.base_url}/graphql",
            params={"extensions": persisted(document)},
            headers=headers,
        )
        assert miss.status_code == 404
        assert miss.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        registered = await http.post(
            f"{first.base_url}/graphql",
            json={"query": document, "extensions": json.loads(persisted(document))},
            headers=headers,
        )
        assert registered.status_code == 200
        cost = registered.json()["extensions"]["cost"]
        assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (42, 2)
        hit = await http.get(
            f"{second.base_url}/graphql",
            params={"extensions": persisted(document)},
            headers=headers,
        )
        assert hit.status_code == 200, hit.text
        assert hit.json()["data"] == {"orders": {"edges": []}}
        # One bucket for the key across both servers: 60, less the miss (1), less 2 actual twice.
        assert hit.json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] >= 55
        assert hit.headers["ratelimit-policy"] == '"cost";q=60;w=60'
        # A 58-point query is more than the shared bucket holds until it restores.
        greedy = "query { orders(first: 56) { edges { node { id } } } }"
        await http.post(f"{first.base_url}/graphql", json={"query": greedy}, headers=headers)
        refused = await http.post(
            f"{second.base_url}/graphql", json={"query": greedy}, headers=headers
        )
        assert refused.status_code == 429, refused.text
        assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert int(refused.headers["retry-after"]) >= 1


@pytest.fixture
def trusted_server(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({sha256(SUBSCRIPTION): SUBSCRIPTION, sha256(CREATE): CREATE}))
    with launch(
        database_url, tmp_path / "server.log", CG_TRUSTED_DOCUMENTS=str(manifest)
    ) as server:
        yield server


async def test_trusted_mode_refuses_other_operations_over_http_and_websocket(
    trusted_server: RunningServer,
) -> None:
    key = trusted_server.demo_key("test", "standard")
    async with httpx.AsyncClient(base_url=trusted_server.base_url) as http:
        refused = await http.post(
            "/graphql",
            json={"query": "{ viewer { mode } }"},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["extensions"]["code"] == "OPERATION_NOT_TRUSTED"

    socket = await open_transport_ws(trusted_server, key)
    try:
        # Checked before parsing, whatever the operation: one `error` message, and nothing
        # about the schema (an unknown field would otherwise be named by validation).
        for operation_id, query in (
            ("subscription", "subscription { orderStatusChanged { sequence } }"),
            ("query", "{ viewer { mode } }"),
            ("probe", "{ secretThing }"),
        ):
            message = {"id": operation_id, "type": "subscribe", "payload": {"query": query}}
            await socket.send(json.dumps(message))
            answer = await receive(socket)
            assert (answer["id"], answer["type"]) == (operation_id, "error"), answer
            [error] = answer["payload"]
            assert error == {
                "message": "Only the operations of this server's trusted-documents manifest run.",
                "extensions": {"code": "OPERATION_NOT_TRUSTED"},
            }

        await subscribe(socket)  # the manifest's subscription, as test_subscriptions sends it
        await asyncio.sleep(0.3)
        order_id = await create_order(trusted_server, key)  # the manifest's mutation
        assert (await next_change(socket))["order"]["id"] == order_id
    finally:
        await socket.close()


async def test_websocket_connection_init_costs_a_point_and_a_subscription_its_cost_once(
    database_url: str, tmp_path: Path
) -> None:
    # A 4-point bucket that restores a point only every 100 s: what happens here is exact.
    limits = {"CG_RATE_LIMIT_PER_SECOND": "0.01", "CG_RATE_LIMIT_BURST": "4"}
    with launch(database_url, tmp_path / "server.log", **limits) as server:
        key = server.demo_key("test", "standard")
        first = await open_transport_ws(server, key)  # 1 point: 3 left
        try:
            await subscribe(first)  # orderStatusChanged 1 + order 1 + mass 1 = 3: 0 left
            await first.send(
                json.dumps({"id": "2", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
            )
            message = await receive(first)
            assert message["id"] == "2"
            assert message["payload"]["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
            cost = message["payload"]["extensions"]["cost"]
            assert cost["requestedQueryCost"] == 3
            assert cost["throttleStatus"]["currentlyAvailable"] == 0
            second = await connect(ws_url(server), subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
            await second.send(json.dumps({"type": "connection_init", "payload": {"apiKey": key}}))
            with pytest.raises(ConnectionClosed) as closed:
                await receive(second)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4403  # graphql-transport-ws's refusal of an init
        finally:
            await first.close()
