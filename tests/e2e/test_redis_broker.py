"""Two server processes sharing Redis: a subscriber on one sees orders fulfilled by the other."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningServer, launch
from tests.e2e.test_subscriptions import create_order, next_change, open_transport_ws, subscribe


@pytest.fixture
def two_servers(
    database_url: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[RunningServer, RunningServer]]:
    # The listener has no worker; everything it hears was fulfilled by the other process.
    with (
        launch(
            database_url, tmp_path / "a.log", CG_REDIS_URL=redis_url, CG_RUN_WORKER="false"
        ) as a,
        launch(database_url, tmp_path / "b.log", CG_REDIS_URL=redis_url) as b,
    ):
        yield a, b


async def test_events_cross_processes_through_redis(
    two_servers: tuple[RunningServer, RunningServer],
) -> None:
    listener, worker = two_servers
    key = listener.demo_key("test", "standard")
    socket = await open_transport_ws(listener, key)
    try:
        await subscribe(socket)
        await asyncio.sleep(0.3)
        order_id = await create_order(worker, key)
        states = []
        for _ in range(2):
            change = await next_change(socket)
            assert change["order"]["id"] == order_id
            states.append(change["state"])
    finally:
        await socket.close()
    assert states == ["PLACED", "FULFILLED"]
