"""Fan-out shares work between subscribers only where the answer is the same: same document,
same variables, same scope. Everything else gets its own result."""

import asyncio
import json
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from tests.e2e.conftest import RunningServer
from tests.e2e.test_subscriptions import create_order, open_transport_ws, receive

STATES = "subscription { orderStatusChanged { sequence state } }"
MASSES = "subscription { orderStatusChanged { sequence order { id mass { amount } } } }"
ONE_ORDER = """subscription($orderId: ID) {
  orderStatusChanged(orderId: $orderId, afterSequence: 0) { state order { id } } }"""


async def fulfilled(server: RunningServer, key: str, order_id: str) -> None:
    """Wait until the order is fulfilled and both its events are published."""
    query = "query($id: ID!) { order(id: $id) { state history { sequence } } }"
    async with httpx.AsyncClient(base_url=server.base_url) as http, asyncio.timeout(10):
        while True:
            response = await http.post(
                "/graphql",
                json={"query": query, "variables": {"id": order_id}},
                headers={"Authorization": f"Bearer {key}"},
            )
            order = response.json()["data"]["order"]
            published = all(change["sequence"] for change in order["history"])
            if order["state"] == "FULFILLED" and published:
                return
            await asyncio.sleep(0.05)


async def start(socket: ClientConnection, operation_id: str, query: str, **variables: Any) -> None:
    payload = {"query": query, "variables": variables}
    await socket.send(json.dumps({"id": operation_id, "type": "subscribe", "payload": payload}))


async def first_event_of(socket: ClientConnection, operation_ids: set[str]) -> dict[str, Any]:
    """The first `next` payload of each operation id on the socket."""
    firsts: dict[str, Any] = {}
    while set(firsts) != operation_ids:
        message = await receive(socket)
        assert message["type"] == "next", message
        firsts.setdefault(message["id"], message["payload"]["data"]["orderStatusChanged"])
    return firsts


async def test_each_subscription_gets_its_own_shape_scope_and_filter(
    server: RunningServer,
) -> None:
    test_key = server.demo_key("test", "standard")
    live_key = server.demo_key("live", "standard")
    early = await create_order(server, test_key, "5")
    await fulfilled(server, test_key, early)  # so that its events are all in the past
    test_socket = await open_transport_ws(server, test_key)
    live_socket = await open_transport_ws(server, live_key)
    try:
        await start(test_socket, "states", STATES)
        await start(test_socket, "masses", MASSES)
        await start(test_socket, "early", ONE_ORDER, orderId=early)
        await start(live_socket, "states", STATES)
        await asyncio.sleep(0.5)
        test_order = await create_order(server, test_key, "7")
        live_order = await create_order(server, live_key, "9")
        on_test = await first_event_of(test_socket, {"states", "masses", "early"})
        on_live = await first_event_of(live_socket, {"states"})
    finally:
        await test_socket.close()
        await live_socket.close()
    assert set(on_test["states"]) == {"sequence", "state"}
    assert on_test["masses"]["order"] == {"id": test_order, "mass": {"amount": "7.000"}}
    assert on_test["early"] == {"state": "PLACED", "order": {"id": early}}
    assert on_live["states"]["sequence"] > on_test["states"]["sequence"]  # the live order's
    assert on_live["states"]["state"] == "PLACED"
    assert live_order != test_order
