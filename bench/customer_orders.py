"""Items per second of a 10,000-item customer order, through the service and over GraphQL.

    .venv/bin/python -m bench.customer_orders

Runs on a temporary SQLite file, and on a temporary PostgreSQL database when the server at
BENCH_DATABASE_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/test) answers.
"""

import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/customer_orders.py`

from app.accounts import service as accounts
from app.accounts.models import Mode
from app.config import Settings
from app.db import Database
from app.emissions import customer_orders
from app.emissions.demo import DEMO_PRODUCTS, seed_demo_products
from app.main import create_app
from app.migrations.runner import migrate

ITEMS = customer_orders.MAX_ITEMS_PER_ORDER
POSTGRES_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
CREATE = """mutation($input: CreateCustomerOrderInput!) {
  createCustomerOrder(input: $input) {
    customerOrder { id itemCount totalEmission estimate { totalEmission { amount } } }
    userErrors { code field message }
  }
}"""


def _items() -> list[customer_orders.DeviceConfig]:
    """A realistic mix: every demo product, tenures of 1 to 36 months, some weighed items."""
    return [
        customer_orders.DeviceConfig(
            product_id=DEMO_PRODUCTS[index % len(DEMO_PRODUCTS)].product_id,
            serial_number=f"SN-{index:06d}",
            tenure_months=1 + index % 36,
        )
        for index in range(ITEMS)
    ]


def _graphql_input(order_id: str) -> dict[str, object]:
    return {
        "customerId": "bench",
        "orderId": order_id,
        "orderDate": "2025-01-01",
        "tenureStartDate": "2025-01-01",
        "items": [
            {
                "config": {
                    "productId": item.product_id,
                    "serialNumber": item.serial_number,
                    "tenureMonths": item.tenure_months,
                }
            }
            for item in _items()
        ],
    }


async def _timed(label: str, run: Callable[[], Awaitable[None]]) -> None:
    started = time.perf_counter()
    await run()
    seconds = time.perf_counter() - started
    print(f"  {label:<34} {ITEMS:>6} items in {seconds:6.2f} s = {ITEMS / seconds:>9,.0f} items/s")


async def bench(url: str) -> None:
    await migrate(url)
    db = Database.from_url(url)
    try:
        async with db.transaction() as session:
            account = await accounts.create_account(session, "Bench", "bench")
            _, key = await accounts.create_api_key(
                session, account.id, Mode.TEST, name="bench", is_admin=True
            )
            await seed_demo_products(session, account.id, Mode.TEST)
        async with db.session() as session:
            principal, _ = await accounts.authenticate(session, key)

        async def through_service() -> None:
            spec = customer_orders.CustomerOrderSpec(
                customer_id="bench",
                order_id="service",
                order_date=date(2025, 1, 1),
                tenure_start_date=date(2025, 1, 1),
                items=_items(),
            )
            async with db.transaction() as session:
                await customer_orders.create_customer_order(session, principal, spec)

        await _timed("createCustomerOrder (service)", through_service)

        settings = Settings(database_url=url, run_worker=False, secret_key="bench-secret")  # noqa: S106
        transport = httpx.ASGITransport(app=create_app(settings, database=db))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            payload = {"query": CREATE, "variables": {"input": _graphql_input("graphql")}}

            async def over_graphql() -> None:
                response = await http.post(
                    "/graphql", json=payload, headers={"Authorization": f"Bearer {key}"}
                )
                body = response.json()
                created = body["data"]["createCustomerOrder"]
                assert created["userErrors"] == [], created["userErrors"]
                assert created["customerOrder"]["itemCount"] == ITEMS

            await _timed("createCustomerOrder (GraphQL, ASGI)", over_graphql)
    finally:
        await db.dispose()


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _postgres(statement: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        print(f"SQLite ({directory}/bench.db)")
        await bench(f"sqlite+aiosqlite:///{directory}/bench.db")
    name = f"cg_bench_{uuid.uuid4().hex[:8]}"
    try:
        await _postgres(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        print(f"PostgreSQL skipped: {error}")
        return
    try:
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        print(f"PostgreSQL ({make_url(url).render_as_string()})")
        await bench(url)
    finally:
        await _postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
