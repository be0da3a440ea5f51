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
from websockets.asyncio.client import ClientConnection, connect

from app.accounts.models import Mode
from app.accounts.service import Principal
from app.config import Settings
from app.db import Database
from app.graphql.websocket import LegacyWSHandler, TransportWSHandler
from app.main import create_app
from app.websocket_writes import PROTOCOL_PATH, CoalescingWebSocketProtocol
from tests.conftest import make_account, make_key
from tests.offsets_fixtures import place_one_tonne, principal_for, stock_of_tonnes

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
DATA = {"graphql-transport-ws": "next", "graphql-ws": "data"}
STOP = {"graphql-transport-ws": "complete", "graphql-ws": "stop"}


@pytest.mark.parametrize("subscription", ["none", "started", "detached"])
@pytest.mark.parametrize(
    ("subprotocol", "handler"),
    [("graphql-transport-ws", TransportWSHandler), ("graphql-ws", LegacyWSHandler)],
)
async def test_closed_sockets_are_freed_without_a_garbage_collection(
    ws_url: str, db: Database, subprotocol: str, handler: type, subscription: str
) -> None:
    """Closed idle; with a subscription running; with one detached (its first event sent,
    its task replaced: app/graphql/events.py `continue_detached`)."""
    account = await make_account(db)
    principal = principal_for(account, Mode.TEST)
    await stock_of_tonnes(db, principal, [100])
    _, key = await make_key(db, account)
    gc.collect()
    gc.disable()
    try:
        for _ in range(SOCKETS):
            async with connect(ws_url, subprotocols=[subprotocol]) as websocket:  # type: ignore[list-item]
                init = {"type": "connection_init", "payload": {"apiKey": key}}
                await websocket.send(json.dumps(init))
                assert json.loads(await websocket.recv())["type"] == "connection_ack"
                assert alive(handler) >= 1  # what is counted is what is there
                if subscription != "none":  # closed with its subscription running
                    operation = {"query": "subscription { orderStatusChanged { sequence } }"}
                    message = {"type": SUBSCRIBE[subprotocol], "id": "1", "payload": operation}
                    await websocket.send(json.dumps(message))
                    await asyncio.sleep(0.05)
                if subscription == "detached":
                    # The first event through Strawberry, the next written by the feed's writer.
                    for _ in range(2):
                        await place_one_tonne(db, principal)
                        async with asyncio.timeout(10):
                            while json.loads(await websocket.recv())["type"] != DATA[subprotocol]:
                                pass
                    await asyncio.sleep(0.05)
        for _ in range(100):  # the server ends each socket's task a few loop turns later
            if alive(handler) == 0 and alive(CoalescingWebSocketProtocol) == 0:
                break
            await asyncio.sleep(0.01)
        assert alive(handler) == 0
        assert alive(CoalescingWebSocketProtocol) == 0
    finally:
        gc.enable()


SUBSCRIPTIONS_PER_ROUND = 10
# A live subscription of the feed's, once detached from Strawberry's stack: its operation and
# task, the feed's subscriber and its frames, the executor kept to render its events (and what
# it holds). ~150 while the stack stayed suspended under every subscription.
MOST_TRACKED_PER_SUBSCRIPTION = 70


async def _subscribe_and_deliver(
    websocket: ClientConnection, subprotocol: str, db: Database, principal: Principal, first: int
) -> None:
    """SUBSCRIPTIONS_PER_ROUND more subscriptions (ids from `first`), then an order whose
    PLACED event every subscription of the socket receives."""
    query = {"query": "subscription { orderStatusChanged { sequence state } }"}
    for index in range(first, first + SUBSCRIPTIONS_PER_ROUND):
        message = {"type": SUBSCRIBE[subprotocol], "id": str(index), "payload": query}
        await websocket.send(json.dumps(message))
    await asyncio.sleep(0.3)  # registered with the feed
    await place_one_tonne(db, principal)
    received = 0
    async with asyncio.timeout(10):
        while received < first + SUBSCRIPTIONS_PER_ROUND:
            message = json.loads(await websocket.recv())
            if message["type"] == DATA[subprotocol]:
                received += 1
    await asyncio.sleep(0.1)  # the last ones' tasks detach after their send


def _tracked() -> int:
    gc.collect()
    return len(gc.get_objects())


@pytest.mark.parametrize("subprotocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_live_subscription_holds_few_objects_for_the_collector_to_walk(
    ws_url: str, db: Database, subprotocol: str
) -> None:
    """Every full garbage collection walks every object a live subscription keeps; with 1,000
    subscriptions and ~150 objects each, one such pass in a burst stalled the process ~135 ms.
    Counted as what ending live subscriptions frees: caches warmed meanwhile (statements,
    prepared queries) stay on both sides of the count."""
    account = await make_account(db)
    principal = principal_for(account, Mode.TEST)
    await stock_of_tonnes(db, principal, [100])
    _, key = await make_key(db, account)
    async with connect(ws_url, subprotocols=[subprotocol]) as websocket:  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"apiKey": key}}
        await websocket.send(json.dumps(init))
        assert json.loads(await websocket.recv())["type"] == "connection_ack"
        await _subscribe_and_deliver(websocket, subprotocol, db, principal, 0)
        await _subscribe_and_deliver(websocket, subprotocol, db, principal, SUBSCRIPTIONS_PER_ROUND)
        live = _tracked()
        for index in range(SUBSCRIPTIONS_PER_ROUND, 2 * SUBSCRIPTIONS_PER_ROUND):
            await websocket.send(json.dumps({"type": STOP[subprotocol], "id": str(index)}))
        await asyncio.sleep(0.3)
        per_subscription = (live - _tracked()) / SUBSCRIPTIONS_PER_ROUND
    print(f"{subprotocol}: {per_subscription:.1f} tracked objects per live subscription")
    assert 0 < per_subscription <= MOST_TRACKED_PER_SUBSCRIPTION
