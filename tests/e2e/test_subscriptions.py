"""orderStatusChanged over real WebSockets: both protocols, replay, auth and isolation."""

import asyncio
import base64
import json
import uuid
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import RunningServer

SUBSCRIPTION = """subscription($orderId: ID, $after: Int) {
  orderStatusChanged(orderId: $orderId, afterSequence: $after) {
    sequence previousState state occurredAt order { id state mass { amount } }
  }
}"""
CREATE = """mutation($amount: Decimal!) {
  createOrderByMass(input: {mass: {amount: $amount, unit: KG}}) { order { id } userErrors { code } }
}"""
TIMEOUT = 10


def ws_url(server: RunningServer) -> str:
    return server.base_url.replace("http://", "ws://") + "/graphql"


async def create_order(server: RunningServer, key: str, kilograms: str = "250") -> str:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post(
            "/graphql",
            json={"query": CREATE, "variables": {"amount": kilograms}},
            headers={"Authorization": f"Bearer {key}"},
        )
    order_id: str = response.json()["data"]["createOrderByMass"]["order"]["id"]
    return order_id


async def receive(socket: ClientConnection) -> dict[str, Any]:
    frame = await asyncio.wait_for(socket.recv(), TIMEOUT)
    # Text frames: the graphql-ws JS client (and Apollo, urql, GraphiQL) reject binary ones.
    assert isinstance(frame, str), f"binary frame: {frame!r}"
    message: dict[str, Any] = json.loads(frame)
    return message


async def open_transport_ws(server: RunningServer, key: str) -> ClientConnection:
    socket = await connect(ws_url(server), subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await socket.send(json.dumps({"type": "connection_init", "payload": {"apiKey": key}}))
    assert (await receive(socket))["type"] == "connection_ack"
    return socket


async def subscribe(socket: ClientConnection, **variables: Any) -> None:
    await socket.send(
        json.dumps(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": SUBSCRIPTION, "variables": variables},
            }
        )
    )


async def next_change(socket: ClientConnection) -> dict[str, Any]:
    message = await receive(socket)
    while message["type"] == "ka":  # the legacy protocol's keep-alive
        message = await receive(socket)
    assert message["type"] in ("next", "data"), message
    assert "errors" not in message["payload"], message
    change: dict[str, Any] = message["payload"]["data"]["orderStatusChanged"]
    return change


async def test_a_subscriber_sees_its_order_placed_then_fulfilled(server: RunningServer) -> None:
    key = server.demo_key("test", "standard")
    socket = await open_transport_ws(server, key)
    try:
        await subscribe(socket)
        await asyncio.sleep(0.3)  # the subscription is registered once the server reads it
        order_id = await create_order(server, key)
        placed = await next_change(socket)
        fulfilled = await next_change(socket)
    finally:
        await socket.close()
    assert placed["order"]["id"] == order_id
    assert (placed["previousState"], placed["state"]) == (None, "PLACED")
    assert (fulfilled["previousState"], fulfilled["state"]) == ("PLACED", "FULFILLED")
    assert fulfilled["order"]["state"] == "FULFILLED"
    assert fulfilled["sequence"] > placed["sequence"]


async def test_after_sequence_replays_what_was_missed(server: RunningServer) -> None:
    key = server.demo_key("test", "standard")
    order_id = await create_order(server, key, "100")
    await asyncio.sleep(1.0)  # fulfilled meanwhile, with nobody listening
    socket = await open_transport_ws(server, key)
    try:
        await subscribe(socket, orderId=order_id, after=0)
        states = [(await next_change(socket))["state"] for _ in range(2)]
    finally:
        await socket.close()
    assert states == ["PLACED", "FULFILLED"]


async def test_legacy_graphql_ws_protocol_is_served(server: RunningServer) -> None:
    key = server.demo_key("test", "standard")
    order_id = await create_order(server, key, "50")
    await asyncio.sleep(1.0)
    async with connect(ws_url(server), subprotocols=["graphql-ws"]) as socket:  # type: ignore[list-item]
        await socket.send(json.dumps({"type": "connection_init", "payload": {"apiKey": key}}))
        assert (await receive(socket))["type"] == "connection_ack"
        await socket.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "start",
                    "payload": {
                        "query": SUBSCRIPTION,
                        "variables": {"orderId": order_id, "after": 0},
                    },
                }
            )
        )
        change = await next_change(socket)
    assert change["order"]["id"] == order_id
    assert change["state"] == "PLACED"


async def test_headers_authenticate_the_handshake_too(server: RunningServer) -> None:
    key = server.demo_key("test", "standard")
    async with connect(
        ws_url(server),
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {key}"},
    ) as socket:
        await socket.send(json.dumps({"type": "connection_init"}))
        assert (await receive(socket))["type"] == "connection_ack"


async def test_a_bad_key_is_refused_at_connection_init(server: RunningServer) -> None:
    socket = await connect(ws_url(server), subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await socket.send(json.dumps({"type": "connection_init", "payload": {"apiKey": "cg_test_x"}}))
    with pytest.raises(ConnectionClosed) as closed:
        await receive(socket)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_subscribers_see_only_their_own_mode(server: RunningServer) -> None:
    test_key = server.demo_key("test", "standard")
    live_key = server.demo_key("live", "standard")
    socket = await open_transport_ws(server, live_key)
    try:
        await subscribe(socket)
        await asyncio.sleep(0.3)
        await create_order(server, test_key, "10")
        live_order = await create_order(server, live_key, "20")
        first = await next_change(socket)
    finally:
        await socket.close()
    assert first["order"]["id"] == live_order


def first_error(message: dict[str, Any]) -> dict[str, Any]:
    """The error a refused subscription answers: graphql-core reports an error raised while
    the event stream is set up as a result with errors (then `complete`), not `error`."""
    assert message["type"] in ("next", "error"), message
    payload = message["payload"]
    errors = payload if message["type"] == "error" else payload["errors"]
    if message["type"] == "next":
        assert payload["data"] is None
    return errors[0]  # type: ignore[no-any-return]


async def test_subscribing_to_an_order_the_key_cannot_see_is_an_error(
    server: RunningServer,
) -> None:
    live_order = await create_order(server, server.demo_key("live", "standard"))
    unknown = base64.b64encode(f"Order:{uuid.uuid4()}".encode()).decode()
    for order_id in (live_order, unknown):
        socket = await open_transport_ws(server, server.demo_key("test", "standard"))
        try:
            await subscribe(socket, orderId=order_id)
            message = await receive(socket)
        finally:
            await socket.close()
        assert first_error(message)["extensions"] == {"code": "NOT_FOUND", "field": "orderId"}


@pytest.mark.parametrize(
    ("after", "says"),
    [(10**9, "beyond the newest event"), (-1, "must be 0 (every event) or the sequence")],
)
async def test_resuming_after_a_sequence_that_cannot_exist_is_an_error(
    server: RunningServer, after: int, says: str
) -> None:
    socket = await open_transport_ws(server, server.demo_key("test", "standard"))
    try:
        await subscribe(socket, after=after)
        message = await receive(socket)
    finally:
        await socket.close()
    error = first_error(message)
    assert error["extensions"] == {"code": "INVALID_INPUT", "field": "afterSequence"}
    assert says in error["message"]
