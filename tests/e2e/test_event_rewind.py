"""A database that goes back behind the events already delivered (restored to an earlier point,
a failover to a replica that was behind) while the server runs: the relay then gives new
events sequences that subscribers have already seen. The server must not drop them in
silence: every live subscription ends with EVENT_HISTORY_REWOUND, and new ones work."""

import asyncio
import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.e2e.conftest import RunningServer
from tests.e2e.test_subscriptions import (
    SUBSCRIPTION,
    create_order,
    next_change,
    open_transport_ws,
    receive,
    subscribe,
)


async def rewind_outbox(database_url: str, from_sequence: int) -> None:
    """What a restore to a point before `from_sequence` leaves of the outbox."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("DELETE FROM event WHERE sequence >= :first"), {"first": from_sequence}
            )
    finally:
        await engine.dispose()


async def test_a_rewound_outbox_ends_every_live_subscription_with_a_typed_error(
    server: RunningServer, database_url: str
) -> None:
    key = server.demo_key("test", "standard")
    socket = await open_transport_ws(server, key)
    try:
        await subscribe(socket)  # "1": account-wide, detached once its first event is out
        await asyncio.sleep(0.5)
        order = await create_order(server, key)
        placed, fulfilled = await next_change(socket), await next_change(socket)
        assert [placed["state"], fulfilled["state"]] == ["PLACED", "FULFILLED"]
        # "2": this order's changes only; there will be none, so it never leaves Strawberry's
        # stack (it is not detached): the other path the error must take.
        await socket.send(
            json.dumps(
                {
                    "id": "2",
                    "type": "subscribe",
                    "payload": {"query": SUBSCRIPTION, "variables": {"orderId": order}},
                }
            )
        )
        await asyncio.sleep(0.5)

        await rewind_outbox(database_url, placed["sequence"])

        ended = {}
        for _ in range(2):
            message = await asyncio.wait_for(_next_end(socket), 10)
            ended[message["id"]] = message
        # The detached one ends as a detached subscription's failure does: an `error` message.
        errors = ended["1"]["payload"]
        assert ended["1"]["type"] == "error"
        # The other one as Strawberry ends a stream that raised: a result with the error, then
        # `complete`.
        assert ended["2"]["type"] == "next"
        assert ended["2"]["payload"]["data"] is None
        assert ended["2"]["payload"]["errors"] == errors
        assert await receive(socket) == {"id": "2", "type": "complete"}
        assert errors[0]["extensions"]["code"] == "EVENT_HISTORY_REWOUND"
        assert "restored" in errors[0]["message"]

        # A new subscription sees new events, numbered again from where the outbox now ends.
        await socket.send(
            json.dumps({"id": "3", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
        )
        await asyncio.sleep(0.5)
        await create_order(server, key)
        renumbered = []
        while len(renumbered) < 2:
            message = await receive(socket)
            if message.get("id") == "3" and message["type"] == "next":
                renumbered.append(message["payload"]["data"]["orderStatusChanged"]["sequence"])
        assert renumbered == [placed["sequence"], placed["sequence"] + 1]
    finally:
        await socket.close()


async def _next_end(socket: Any) -> dict[str, Any]:
    while True:
        message = await receive(socket)
        if message["type"] == "error":
            return message
        if message["type"] == "next" and message["payload"].get("errors"):
            return message
