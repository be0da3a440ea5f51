"""Fan-out shares work between subscribers only where the answer is the same: same document,
same variables, same scope. Everything else gets its own result. Frames the feed writes
directly read like those Strawberry sends."""

import asyncio
import contextlib
import json
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.conftest import RunningServer
from tests.e2e.test_subscriptions import create_order, open_transport_ws, receive, ws_url

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


async def open_legacy_ws(server: RunningServer, key: str) -> ClientConnection:
    socket = await connect(ws_url(server), subprotocols=["graphql-ws"])  # type: ignore[list-item]
    await socket.send(json.dumps({"type": "connection_init", "payload": {"apiKey": key}}))
    assert (await receive(socket))["type"] == "connection_ack"
    return socket


async def frames_of(socket: ClientConnection, orders: set[str], count: int) -> list[Any]:
    """The next `count` result frames about `orders` (keep-alives and other orders skipped)."""
    frames: list[Any] = []
    while len(frames) < count:
        message = await receive(socket)
        if message["type"] in ("next", "data"):
            if message["payload"]["data"]["orderStatusChanged"]["order"]["id"] in orders:
                frames.append(message)
        else:
            assert message["type"] == "ka", message
    return frames


async def test_frames_the_feed_writes_itself_read_like_the_first_on_both_protocols(
    server: RunningServer,
) -> None:
    """A subscription's first event goes through Strawberry; the following ones, written by
    the feed directly (app/graphql/events.py LiveFrames), must carry the same message shape and
    the subscription's own `extensions` (its cost), in order, exactly once."""
    key = server.demo_key("test", "standard")
    document = "subscription { orderStatusChanged { sequence state order { id } } }"
    transport = await open_transport_ws(server, key)
    legacy = await open_legacy_ws(server, key)
    orders: set[str] = set()
    try:
        await start(transport, "a", document)
        await start(transport, "b", document)
        await legacy.send(json.dumps({"id": "c", "type": "start", "payload": {"query": document}}))
        await asyncio.sleep(0.5)
        for kilograms in ("3", "4", "6"):
            orders.add(order := await create_order(server, key, kilograms))
            await fulfilled(server, key, order)
        on_transport = await frames_of(transport, orders, 12)
        on_legacy = await frames_of(legacy, orders, 6)
    finally:
        await transport.close()
        await legacy.close()
    for frames, kind, ids in ((on_transport, "next", {"a", "b"}), (on_legacy, "data", {"c"})):
        assert {frame["id"] for frame in frames} == ids
        for operation_id in ids:
            own = [frame for frame in frames if frame["id"] == operation_id]
            assert [set(frame) for frame in own] == [{"id", "type", "payload"}] * 6
            assert {frame["type"] for frame in own} == {kind}
            assert [set(frame["payload"]) for frame in own] == [{"data", "extensions"}] * 6
            assert own[0]["payload"]["extensions"]["cost"]["requestedQueryCost"] > 0
            assert all(
                frame["payload"]["extensions"] == own[0]["payload"]["extensions"] for frame in own
            )
            changes = [frame["payload"]["data"]["orderStatusChanged"] for frame in own]
            sequences = [change["sequence"] for change in changes]
            assert sequences == sorted(set(sequences))
            assert [change["state"] for change in changes] == ["PLACED", "FULFILLED"] * 3


async def test_subscriptions_that_read_the_database_per_event_hold_up_no_other_scope(
    server: RunningServer,
) -> None:
    """The feed's writer serves every subscriber of the process, one event after another. One
    key's 100 subscriptions, each its own group (an alias of its own) with nested fields read
    per event, must not make another scope's subscriber wait behind 100 database round trips
    per event (with the writer awaiting each: ~25 s here for this burst, instead of ~2 s); and
    each of them still gets each of its events once, in order."""
    test_key = server.demo_key("test", "standard")
    live_key = server.demo_key("live", "standard")
    nested = "allocations { __typename } webhookDeliveries { __typename }"
    heavy = [await open_transport_ws(server, test_key) for _ in range(5)]
    victim = await open_transport_ws(server, live_key)
    try:
        for index, socket in enumerate(heavy):
            for number in range(20):
                alias = f"s{index}_{number}"
                field = f"{alias}: orderStatusChanged {{ sequence order {{ {nested} }} }}"
                query = f"subscription {{ {field} }}"
                await start(socket, alias, query)
        await start(victim, "states", STATES)
        await asyncio.sleep(0.5)
        first = await create_order(server, test_key, "1")  # everyone's first event: Strawberry's
        await fulfilled(server, test_key, first)
        burst = await asyncio.gather(*(create_order(server, test_key, "1") for _ in range(20)))
        began = asyncio.get_running_loop().time()
        await create_order(server, live_key, "1")
        async with asyncio.timeout(120):
            for _ in ("PLACED", "FULFILLED"):
                while (await receive(victim))["type"] != "next":
                    pass
        waited = asyncio.get_running_loop().time() - began
        for order_id in burst:
            await fulfilled(server, test_key, order_id)
        expected = 2 * (1 + len(burst))
        for socket in heavy:
            seen: dict[str, list[int]] = {}
            async with asyncio.timeout(30):
                while sum(map(len, seen.values())) < 20 * expected:
                    message = await receive(socket)
                    if message["type"] == "next":
                        (change,) = message["payload"]["data"].values()
                        seen.setdefault(message["id"], []).append(change["sequence"])
            assert all(len(set(s)) == expected and s == sorted(s) for s in seen.values())
    finally:
        for socket in (*heavy, victim):
            await socket.close()
    assert waited < 10, f"another scope's event waited {waited:.1f} s behind the burst"


async def test_not_one_frame_follows_the_end_of_an_operation_during_a_burst(
    server: RunningServer,
) -> None:
    """Two subscriptions on each protocol, written directly; one of them ends mid-burst. After
    the server has handled that end (graphql-transport-ws: the `pong` to a `ping` sent after
    `complete`; legacy: its own `complete` answering `stop`), nothing more arrives for it, while
    the other goes on receiving."""
    key = server.demo_key("test", "standard")
    document = {"query": "subscription { orderStatusChanged { sequence } }"}
    transport = await open_transport_ws(server, key)
    legacy = await open_legacy_ws(server, key)

    async def end_one_mid_burst(
        socket: ClientConnection, end: str, data: str, answer: str
    ) -> list[dict[str, Any]]:
        seen = 0
        while seen < 3:  # a few of the burst's frames for it first
            message = await receive(socket)
            seen += message["type"] == data and message["id"] == "ends"
        await socket.send(json.dumps({"id": "ends", "type": end}))
        if end == "complete":
            await socket.send(json.dumps({"type": "ping"}))
        while True:
            message = await receive(socket)
            if message["type"] == answer and message.get("id", "ends") == "ends":
                break
        after: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.5):
                while True:
                    after.append(await receive(socket))
        return after

    try:
        for socket, begin in ((transport, "subscribe"), (legacy, "start")):
            for operation_id in ("ends", "stays"):
                message = {"id": operation_id, "type": begin, "payload": document}
                await socket.send(json.dumps(message))
        await asyncio.sleep(0.5)
        await create_order(server, key, "1")  # the first event detaches every subscription
        results = await asyncio.gather(
            end_one_mid_burst(transport, "complete", "next", "pong"),
            end_one_mid_burst(legacy, "stop", "data", "complete"),
            *(create_order(server, key, "2") for _ in range(30)),
        )
    finally:
        await transport.close()
        await legacy.close()
    for after, data in ((results[0], "next"), (results[1], "data")):
        assert [message for message in after if message.get("id") == "ends"] == []
        assert any(message["type"] == data and message["id"] == "stays" for message in after)
