"""kill -9 during a burst of group-committed creates loses no order a client was told about."""

import asyncio
import os
import re
import signal
import time
from pathlib import Path

import httpx
from sqlmodel import col, select

from app.db import Database
from app.events.models import Event
from app.offsets.models import OffsetOrder, OrderLine
from tests.e2e.conftest import launch
from tests.offsets_fixtures import row_id

CREATE = """mutation($key: String!) {
  createOrderByMass(input: {mass: {amount: "1", unit: KG}, idempotencyKey: $key}) {
    order { id } userErrors { code }
  }
}"""
CLIENTS = 16
ACKNOWLEDGED_BEFORE_KILL = 150


async def _burst_until_killed(base_url: str, api_key: str, kill: "asyncio.Future[None]") -> dict:  # type: ignore[type-arg]
    """Concurrent creates until the server dies; the orders whose creation was answered."""
    acknowledged: dict[str, str] = {}
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as client:

        async def client_loop(index: int) -> None:
            for number in range(10**6):
                key = f"burst-{index}-{number}"
                try:
                    response = await client.post(
                        "/graphql", json={"query": CREATE, "variables": {"key": key}}
                    )
                except httpx.TransportError:
                    return  # the server is gone: this one was never answered
                payload = response.json()["data"]["createOrderByMass"]
                assert payload["userErrors"] == []
                acknowledged[key] = payload["order"]["id"]
                if len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL and not kill.done():
                    kill.set_result(None)

        await asyncio.gather(*(client_loop(index) for index in range(CLIENTS)))
    return acknowledged


async def test_kill_9_during_a_write_burst_loses_no_acknowledged_order(
    database_url: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "server.log"
    with launch(database_url, log_path, CG_LOG_LEVEL="DEBUG", CG_RUN_WORKER="false") as server:
        kill: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def kill_when_told() -> None:
            await asyncio.wait_for(kill, timeout=60)
            os.kill(server.process.pid, signal.SIGKILL)

        killer = asyncio.create_task(kill_when_told())
        acknowledged = await _burst_until_killed(
            server.base_url, server.demo_key("test", "standard"), kill
        )
        await killer
        server.process.wait(timeout=10)
        killed_at = time.monotonic()
    assert server.process.returncode == -signal.SIGKILL
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL
    # The burst went through group commit: some transactions held several creates.
    sizes = [
        int(size) for size in re.findall(r"group commit of (\d+) writes", log_path.read_text())
    ]
    assert max(sizes) > 1, sizes

    db = Database.from_url(database_url)
    try:
        async with db.session() as session:
            ids = [row_id(order_id) for order_id in acknowledged.values()]
            stored = set(
                (
                    await session.exec(select(OffsetOrder.id).where(col(OffsetOrder.id).in_(ids)))
                ).all()
            )
            with_lines = set(
                (
                    await session.exec(
                        select(OrderLine.order_id).where(col(OrderLine.order_id).in_(ids))
                    )
                ).all()
            )
            with_events = set(
                (
                    await session.exec(select(Event.order_id).where(col(Event.order_id).in_(ids)))
                ).all()
            )
    finally:
        await db.dispose()
    assert stored == set(ids), f"{len(set(ids) - stored)} acknowledged orders lost"
    assert with_lines == set(ids)
    assert with_events == set(ids)
    assert time.monotonic() - killed_at < 30

    # A restarted server serves the same orders (SQLite recovers its WAL on open).
    with launch(database_url, tmp_path / "restart.log") as restarted:
        key = next(iter(acknowledged))
        headers = {"Authorization": f"Bearer {restarted.demo_key('test', 'standard')}"}
        async with httpx.AsyncClient(base_url=restarted.base_url, headers=headers) as client:
            response = await client.post(
                "/graphql", json={"query": CREATE, "variables": {"key": key}}
            )
        assert response.json()["data"]["createOrderByMass"]["order"]["id"] == acknowledged[key]
