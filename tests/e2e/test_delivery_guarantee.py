"""The delivery guarantee across real topologies: every subscriber on every server process gets
every event exactly once, in strictly increasing `sequence`, and `afterSequence` resumes exactly.

- PostgreSQL + Redis: two servers (no in-process worker) and two `carbon-gateway worker`s.
- SQLite, no Redis: one server and a separate worker; the server never hears the worker's
  doorbell and finds its events by polling the outbox.
"""

import asyncio
import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from tests.e2e.conftest import RunningServer, launch, launch_worker
from tests.e2e.test_subscriptions import CREATE, next_change, open_transport_ws, subscribe

ORDERS = 120
CONCURRENT = 25
DEADLINE_SECONDS = 30
Event = tuple[int, str, str]  # (sequence, order id, state)


@contextlib.contextmanager
def topology(
    database_url: str, tmp_path: Path, *, servers: int, workers: int, **env: str
) -> Iterator[list[RunningServer]]:
    with contextlib.ExitStack() as stack:
        # One at a time: the first start migrates and seeds the demo account.
        running = [
            stack.enter_context(
                launch(database_url, tmp_path / f"server-{n}.log", CG_RUN_WORKER="false", **env)
            )
            for n in range(servers)
        ]
        for n in range(workers):
            stack.enter_context(launch_worker(database_url, tmp_path / f"worker-{n}.log", **env))
        yield running


async def place_orders(servers: list[RunningServer], key: str, count: int) -> list[str]:
    """`count` orders placed CONCURRENT at a time, spread over the servers."""
    limit = asyncio.Semaphore(CONCURRENT)

    async def place(http: httpx.AsyncClient, server: RunningServer) -> str:
        async with limit:
            response = await http.post(
                f"{server.base_url}/graphql",
                json={"query": CREATE, "variables": {"amount": "1"}},
                headers={"Authorization": f"Bearer {key}"},
            )
        order = response.json()["data"]["createOrderByMass"]
        assert order["userErrors"] == [], order
        order_id: str = order["order"]["id"]
        return order_id

    async with httpx.AsyncClient(timeout=30) as http:
        return list(
            await asyncio.gather(*(place(http, servers[i % len(servers)]) for i in range(count)))
        )


async def receive_until(
    socket: ClientConnection, events: list[Event], done: Any, quiet: float = 0.5
) -> None:
    """Append what arrives until `done(events)` (or the deadline: the caller's assertions say
    what is missing), then a little longer, to catch repeats."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DEADLINE_SECONDS):
            while not done(events):
                change = await next_change(socket)
                events.append((change["sequence"], change["order"]["id"], change["state"]))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(quiet):
            while True:
                change = await next_change(socket)
                events.append((change["sequence"], change["order"]["id"], change["state"]))


def at_least(count: int) -> Any:
    return lambda events: len(events) >= count


def covers(expected: set[tuple[str, str]]) -> Any:
    return lambda events: expected <= {(order, state) for _, order, state in events}


async def assert_exactly_once_in_order_and_resumable(servers: list[RunningServer]) -> None:
    key = servers[0].demo_key("test", "standard")
    sockets = [await open_transport_ws(server, key) for server in servers]
    try:
        for socket in sockets:
            await subscribe(socket)  # account-wide, live from now
        # A probe order proves every subscription is registered before the burst starts.
        [probe] = await place_orders(servers, key, 1)
        streams: list[list[Event]] = [[] for _ in sockets]
        await asyncio.gather(
            *(
                receive_until(socket, events, covers({(probe, "PLACED")}), quiet=0)
                for socket, events in zip(sockets, streams, strict=True)
            )
        )

        orders = await place_orders(servers, key, ORDERS)
        expected = {(order, state) for order in orders for state in ("PLACED", "FULFILLED")}
        expected.add((probe, "FULFILLED"))
        await asyncio.gather(
            *(
                receive_until(socket, events, covers(expected))
                for socket, events in zip(sockets, streams, strict=True)
            )
        )
    finally:
        for socket in sockets:
            await socket.close()

    for events in streams:
        sequences = [sequence for sequence, _, _ in events]
        seen = [(order, state) for _, order, state in events]
        assert len(seen) == len(set(seen)), "an event was delivered twice"
        missed = expected - set(seen)
        assert not missed, f"missed {len(missed)} of {len(expected)} events"
        assert all(a < b for a, b in itertools.pairwise(sequences)), "out of order"
        # One account in a fresh database: its sequences are contiguous.
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    assert all(events == streams[0] for events in streams), "processes disagree"

    history = streams[0]
    middle = history[len(history) // 2][0]
    for server in servers:
        after_middle = [event for event in history if event[0] > middle]
        last = history[-1][0]
        socket = await open_transport_ws(server, key)
        try:
            await subscribe(socket, after=middle)
            resumed: list[Event] = []
            await receive_until(socket, resumed, at_least(len(after_middle)))
            assert resumed == after_middle, "a resume must replay exactly what came after"
            [later] = await place_orders([server], key, 1)
            await receive_until(socket, resumed, covers({(later, "FULFILLED")}), quiet=0.3)
        finally:
            await socket.close()
        assert resumed[len(after_middle) :] == [
            (last + 1, later, "PLACED"),
            (last + 2, later, "FULFILLED"),
        ], "live events must follow the replay with no gap and no repeat"
        history = [*history, *resumed[len(after_middle) :]]


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_two_servers_and_two_workers_on_postgresql_and_redis_deliver_exactly_once(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    with topology(database_url, tmp_path, servers=2, workers=2, CG_REDIS_URL=redis_url) as servers:
        await assert_exactly_once_in_order_and_resumable(servers)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_server_and_a_separate_worker_on_sqlite_without_redis_deliver_exactly_once(
    database_url: str, tmp_path: Path
) -> None:
    with topology(database_url, tmp_path, servers=1, workers=1) as servers:
        await assert_exactly_once_in_order_and_resumable(servers)
