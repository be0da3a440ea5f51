"""The nested orders read in-process, response cache off and on, side by side.

    .venv/bin/python -m bench.response_cache [requests]   # default 500

Seeds a temporary SQLite file with the demo account and 20 fulfilled orders, then sends the
same nested read `requests` times through httpx's ASGITransport (the whole HTTP, auth, limits
and execution path; no sockets), once with CG_RESPONSE_CACHE off and once on, and prints
req/s, p50 and p99 of each. Rate limits are off; the cached run's first request is its miss.
"""

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from app.accounts import service as accounts
from app.accounts.models import Mode
from app.config import Settings
from app.db import Database
from app.demo import seed_demo
from app.main import create_app
from app.migrations.runner import migrate
from app.offsets import service as offsets
from app.offsets.fulfilment import fulfil_pending

SECRET = "bench-secret-for-the-response-cache"  # noqa: S105 (a throwaway database)
ORDERS = 20
NESTED = """{ orders(first: 20) { edges { node { id state createdAt mass { amount unit }
  allocations { mass { amount unit } project { id name } } } } } }"""


async def seed(db: Database) -> str:
    async with db.transaction() as session:
        keys = await seed_demo(session, SECRET)
    demo = next(k for k in keys if k.mode is Mode.TEST and not k.admin)
    async with db.session() as session:
        principal, _ = await accounts.authenticate(session, demo.key, None)
    for _ in range(ORDERS):
        async with db.transaction() as session:
            await offsets.create_order_by_mass(session, principal, 1_000, offsets.OrderOptions())
    while (await fulfil_pending(db, SECRET)).fulfilled:
        pass
    return demo.key


async def run(settings: Settings, db: Database, key: str, requests: int) -> list[float]:
    app = create_app(settings, database=db)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}"}
    timings = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        for _ in range(requests):
            started = time.perf_counter()
            response = await http.post("/graphql", json={"query": NESTED}, headers=headers)
            timings.append(time.perf_counter() - started)
            body = response.json()
            assert response.status_code == 200, body
            assert "errors" not in body, body
            assert len(body["data"]["orders"]["edges"]) == ORDERS
    return timings


def report(label: str, timings: list[float]) -> str:
    ordered = sorted(timings)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{label:<10} {len(timings) / sum(timings):8.0f} req/s   p50 "
        f"{statistics.median(ordered) * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms"
    )


async def main(requests: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        await migrate(url)
        db = Database.from_url(url)
        try:
            key = await seed(db)
            base = Settings(
                database_url=url, secret_key=SECRET, run_worker=False, rate_limit_per_second=0
            )
            off = await run(base.model_copy(update={"response_cache": False}), db, key, requests)
            on = await run(base.model_copy(update={"response_cache": True}), db, key, requests)
        finally:
            await db.dispose()
    print(f"nested orders read, {ORDERS} orders with allocations, {requests} requests, SQLite")
    print(report("cache off", off))
    print(report("cache on", on))
    print(f"speed-up  {sum(off) / sum(on):8.1f}x")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
