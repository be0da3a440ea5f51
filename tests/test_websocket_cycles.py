"""A closed WebSocket leaves no reference cycle behind: its handler, context and the server's
protocol are freed by reference counting the moment it ends, not by a full garbage collection
(with 5,000 sockets closing, one such collection was a pause of 0.3-2 s in the middle of a
burst). Real uvicorn, with the protocol class `carbon-gateway serve` uses, over real sockets;
garbage collection is off while the sockets open and close, so whatever a cycle holds stays
visible."""

import asyncio
import gc
import json
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from websockets.asyncio.client import connect

from app.config import Settings
from app.db import Database
from app.graphql.websocket import LegacyWSHandler, TransportWSHandler
from app.main import create_app
from app.websocket_writes import PROTOCOL_PATH, CoalescingWebSocketProtocol
from tests.conftest import make_account, make_key

SOCKETS = 10


@pytest.fixture
async def ws_url(settings: Settings, db: Database) -> AsyncIterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, database=db),
        host="127.0.0.1",
        port=port,
        ws=PROTOCOL_PATH,
        log_config=None,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await serving


def alive(kind: type) -> int:
    return sum(1 for thing in gc.get_objects() if type(thing) is kind)


SUBSCRIBE = {
    "graphql-transport-ws": "subscribe",
    "graphql-ws": "start",
}


@pytest.mark.parametrize("subscribed", [False, True], ids=["idle", "subscribed"])
@pytest.mark.parametrize(
    ("subprotocol", "handler"),
    [("graphql-transport-ws", TransportWSHandler), ("graphql-ws", LegacyWSHandler)],
)
async def test_closed_sockets_are_freed_without_a_garbage_collection(
    ws_url: str, db: Database, subprotocol: str, handler: type, subscribed: bool
) -> None:
    _, key = await make_key(db, await make_account(db))
    gc.collect()
    gc.disable()
    try:
        for _ in range(SOCKETS):
            async with connect(ws_url, subprotocols=[subprotocol]) as websocket:  # type: ignore[list-item]
                init = {"type": "connection_init", "payload": {"apiKey": key}}
                await websocket.send(json.dumps(init))
                assert json.loads(await websocket.recv())["type"] == "connection_ack"
                assert alive(handler) >= 1  # what is counted is what is there
                if subscribed:  # closed with its subscription running
                    operation = {"query": "subscription { orderStatusChanged { sequence } }"}
                    message = {"type": SUBSCRIBE[subprotocol], "id": "1", "payload": operation}
                    await websocket.send(json.dumps(message))
                    await asyncio.sleep(0.05)
        for _ in range(100):  # the server ends each socket's task a few loop turns later
            if alive(handler) == 0 and alive(CoalescingWebSocketProtocol) == 0:
                break
            await asyncio.sleep(0.01)
        assert alive(handler) == 0
        assert alive(CoalescingWebSocketProtocol) == 0
    finally:
        gc.enable()
