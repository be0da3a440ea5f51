"""`carbon-gateway worker` as its own process fulfils orders placed by others, and stops cleanly."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from app.accounts.models import Mode
from app.db import Database
from app.offsets.models import OffsetOrder, OrderState
from tests.conftest import make_account
from tests.offsets_fixtures import place_one_tonne, principal_for, stock_of_tonnes


async def _place_order(database_url: str) -> uuid.UUID:
    db = Database.from_url(database_url)
    try:
        account = await make_account(db)
        admin = principal_for(account, Mode.LIVE)
        await stock_of_tonnes(db, admin, [3])
        return await place_one_tonne(db, admin)
    finally:
        await db.dispose()


async def _state(database_url: str, order_id: uuid.UUID) -> OrderState:
    db = Database.from_url(database_url)
    try:
        async with db.session() as session:
            order = await session.get(OffsetOrder, order_id)
            assert order is not None
            return order.state
    finally:
        await db.dispose()


def test_worker_process_fulfils_and_stops_on_sigterm(database_url: str, tmp_path: Path) -> None:
    order_id = asyncio.run(_place_order(database_url))
    log = tmp_path / "worker.log"
    env = {**os.environ, "CG_DATABASE_URL": database_url, "CG_SECRET_KEY": "worker-secret"}
    with log.open("w") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 20
        while asyncio.run(_state(database_url, order_id)) is not OrderState.FULFILLED:
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=10)
    assert code == 0, log.read_text()
    assert "fulfilment worker stopped" in log.read_text()
