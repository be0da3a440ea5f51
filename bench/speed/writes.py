"""The write path under 32 concurrent clients: `createOrderByMass` from wrk for a fixed window,
orders created and fulfilled per second counted in the database, the backlog, and (on a
database of its own) a burst against short stock that must not oversell."""

import asyncio
import contextlib
import dataclasses
import json
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from bench.databases import drop_postgres_database, postgres_database, url_of
from bench.speed import wrk
from bench.speed.database import BatchStock, BenchDatabase
from bench.speed.servers import (
    ADMIN_TEST_KEY,
    TEST_KEY,
    Server,
    background_process,
    our_worker,
    ours,
    started,
)
from bench.speed.wrk import LOAD_CPU

CONNECTIONS = 32
BACKLOG_RECHECK_SECONDS = 5
KEY_PLACEHOLDER = "@KEY@"
CREATE = """mutation Create($key: String!, $portfolioId: ID) {
  createOrderByMass(input: {mass: {amount: "1", unit: KG}, idempotencyKey: $key,
                            portfolioId: $portfolioId}) {
    order { id state } userErrors { code message } } }"""
# Short stock: two batches of 4.5 kg and 5.5 kg behind a portfolio of their own, so exactly
# ten 1 kg orders can be fulfilled (one of them from both batches) and the rest must wait.
SHORT_BATCH_GRAMS = (4_500, 5_500)
SHORT_FULFILLABLE = sum(SHORT_BATCH_GRAMS) // 1_000
SHORT_SECONDS = 3
SHORT_SETTLE_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class ShortStock:
    """The burst against short stock, on a database of its own."""

    fulfilled: int
    waiting: int
    remaining_grams: int
    batches: list[BatchStock]

    @property
    def held(self) -> bool:
        """The burst took exactly the stock there was and left the other orders waiting."""
        return (
            self.fulfilled == SHORT_FULFILLABLE
            and self.remaining_grams == 0
            and self.waiting > 0
            and not any(batch.oversold for batch in self.batches)
        )


@dataclasses.dataclass(frozen=True)
class Window:
    """The measured window of 32 clients creating orders on the default portfolio."""

    seconds: float
    created: int
    fulfilled: int
    result: wrk.WrkResult
    backlog_at_end: int
    backlog_later: int
    batches: list[BatchStock]
    # The server process's CPU time in the window (on SQLite its worker's too).
    server_cpu_seconds: float

    @property
    def created_per_second(self) -> float:
        return self.created / self.seconds

    @property
    def created_per_server_cpu_second(self) -> float:
        return self.created / self.server_cpu_seconds

    @property
    def fulfilled_per_second(self) -> float:
        return self.fulfilled / self.seconds

    @property
    def oversold(self) -> list[BatchStock]:
        return [batch for batch in self.batches if batch.oversold]


@dataclasses.dataclass(frozen=True)
class WriteFigure:
    database: str
    window: Window
    short: ShortStock


def create_script(key_prefix: str, portfolio_id: str | None = None) -> str:
    variables: dict[str, Any] = {"key": f"{key_prefix}{KEY_PLACEHOLDER}"}
    if portfolio_id is not None:
        variables["portfolioId"] = portfolio_id
    before, after = json.dumps({"query": CREATE, "variables": variables}).split(KEY_PLACEHOLDER)
    return wrk.numbered_post_script(
        before, after, {"Authorization": f"Bearer {TEST_KEY}"}, '"userErrors":[]'
    )


async def graphql(server: Server, key: str, query: str, variables: dict[str, Any]) -> Any:
    """One checked request; returns `data`."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        response = await http.post(
            f"{server.url}/graphql", json={"query": query, "variables": variables}
        )
    answer = response.json()
    payloads = (answer.get("data") or {}).values()
    if (
        response.status_code != 200
        or "errors" in answer
        or any(payload and payload.get("userErrors") for payload in payloads)
    ):
        raise RuntimeError(f"{query.split('(')[0]} answered {response.status_code}: {answer}")
    return answer["data"]


@contextlib.asynccontextmanager
async def write_setup(database: str, database_url: str) -> AsyncIterator[Server]:
    """SQLite: one server with its in-process worker. PostgreSQL: one server and one
    `carbon-gateway worker` process (beside wrk on the load generator's CPU)."""
    if database == "sqlite":
        command, environment = ours(database_url)
        async with started("writes-sqlite", command, environment) as server:
            yield server
        return
    command, environment = ours(database_url, run_worker="false")
    async with started("writes-postgresql", command, environment) as server:
        worker_command, worker_environment = our_worker(database_url)
        async with background_process("worker", worker_command, worker_environment, LOAD_CPU):
            yield server


async def admin_create(server: Server, field: str, returns: str, values: dict[str, Any]) -> str:
    """Run the admin mutation `field` (input type `<Field>Input`); the id of what it made."""
    input_type = f"{field[0].upper()}{field[1:]}Input"
    query = f"""mutation($input: {input_type}!) {{ {field}(input: $input) {{
      {returns} {{ id }} userErrors {{ code message }} }} }}"""
    data = await graphql(server, ADMIN_TEST_KEY, query, {"input": values})
    return str(data[field][returns]["id"])


async def short_stock_portfolio(server: Server) -> str:
    """A portfolio of one bundle of one project with SHORT_BATCH_GRAMS of stock."""
    project_id = await admin_create(
        server,
        "createProject",
        "project",
        {
            "name": "Bench short stock",
            "type": "REFORESTATION",
            "registry": "Verra",
            "registryId": "BENCH-SHORT",
            "country": "BR",
        },
    )
    for index, grams in enumerate(SHORT_BATCH_GRAMS):
        batch = {
            "projectId": project_id,
            "quantity": {"amount": str(grams), "unit": "G"},
            "serialPrefix": f"BENCH-SHORT-{index}",
            "vintage": 2020 + index,
        }
        await admin_create(server, "addCreditBatch", "creditBatch", batch)
    bundle = {
        "name": "Bench short stock",
        "projectIds": [project_id],
        "unitPrice": {"amount": "10.00", "currency": "USD"},
    }
    bundle_id = await admin_create(server, "createBundle", "bundle", bundle)
    portfolio = {
        "name": "Bench short stock",
        "bundles": [{"bundleId": bundle_id, "weight": "100"}],
    }
    return await admin_create(server, "createPortfolio", "portfolio", portfolio)


async def run_window(
    server: Server, folder: Path, key_prefix: str, seconds: float, portfolio_id: str | None = None
) -> tuple[float, wrk.WrkResult]:
    script = folder / f"{key_prefix}.lua"
    script.write_text(create_script(key_prefix, portfolio_id))
    started_at = time.monotonic()
    result = await wrk.run(
        f"{server.url}/graphql", script, seconds, CONNECTIONS, timeout_seconds=30
    )
    return time.monotonic() - started_at, result


async def measure_window(
    database: str, database_url: str, seconds: float, warm_up_seconds: float
) -> Window:
    """A warm-up, the measured window, the backlog then and BACKLOG_RECHECK_SECONDS later,
    and the stock check of every batch."""
    run = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as name:
        folder = Path(name)
        async with write_setup(database, database_url) as server:
            db = BenchDatabase(database_url)
            try:
                await graphql(server, TEST_KEY, CREATE, {"key": f"check-{run}"})
                await run_window(server, folder, f"warm-{run}-", warm_up_seconds)
                window_prefix = f"bench-{run}-"
                before = await db.orders_by_state()
                cpu_before = server.cpu_seconds()
                elapsed, result = await run_window(server, folder, window_prefix, seconds)
                server_cpu_seconds = server.cpu_seconds() - cpu_before
                after = await db.orders_by_state()
                # Created: the window's own orders (a warm-up request still in flight when
                # the window opens commits inside it). Fulfilled: whatever the worker
                # finished inside the window, warm-up orders included.
                created = (await db.orders_by_state(window_prefix)).total()
                await asyncio.sleep(BACKLOG_RECHECK_SECONDS)
                later = await db.orders_by_state()
                batches = await db.batch_stock()
            finally:
                await db.dispose()
    return Window(
        seconds=elapsed,
        created=created,
        fulfilled=after["FULFILLED"] - before["FULFILLED"],
        result=result,
        backlog_at_end=after["PLACED"],
        backlog_later=later["PLACED"],
        batches=batches,
        server_cpu_seconds=server_cpu_seconds,
    )


async def measure_short_stock(database: str, database_url: str, seconds: float) -> ShortStock:
    """CONNECTIONS clients ordering from a portfolio with SHORT_BATCH_GRAMS of stock."""
    with tempfile.TemporaryDirectory(prefix="bench-short-") as name:
        async with write_setup(database, database_url) as server:
            db = BenchDatabase(database_url)
            try:
                portfolio_id = await short_stock_portfolio(server)
                await run_window(server, Path(name), "short-", seconds, portfolio_id)
                orders = await short_stock_settled(db, "short-")
                batches = [
                    batch
                    for batch in await db.batch_stock()
                    if batch.serial_prefix.startswith("BENCH-SHORT-")
                ]
            finally:
                await db.dispose()
    return ShortStock(
        fulfilled=orders["FULFILLED"],
        waiting=orders["PLACED"],
        remaining_grams=sum(batch.remaining_grams for batch in batches),
        batches=batches,
    )


async def short_stock_settled(db: BenchDatabase, key_prefix: str) -> Counter[str]:
    """The short-stock orders by state once SHORT_FULFILLABLE are fulfilled and two more
    seconds have passed (time for an oversold order to show), or after SHORT_SETTLE_SECONDS."""
    deadline = time.monotonic() + SHORT_SETTLE_SECONDS
    while time.monotonic() < deadline:
        if (await db.orders_by_state(key_prefix))["FULFILLED"] >= SHORT_FULFILLABLE:
            await asyncio.sleep(2)
            break
        await asyncio.sleep(0.5)
    return await db.orders_by_state(key_prefix)


@contextlib.asynccontextmanager
async def temporary_database(database: str) -> AsyncIterator[str | None]:
    """The URL of a new SQLite file or PostgreSQL database (None when PostgreSQL is down)."""
    if database == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-writes-db-") as folder:
            yield f"sqlite+aiosqlite:///{folder}/writes.db"
        return
    name = await postgres_database()
    if name is None:
        yield None
        return
    try:
        yield url_of(name)
    finally:
        await drop_postgres_database(name)


async def run_writes(
    databases: list[str], seconds: float, warm_up_seconds: float
) -> list[WriteFigure]:
    figures = []
    for database in databases:
        print(f"writes: {database}, {CONNECTIONS} clients, {seconds:g} s …", flush=True)
        async with temporary_database(database) as url:
            if url is None:
                continue
            window = await measure_window(database, url, seconds, warm_up_seconds)
        # On a database of its own: its waiting orders stay out of the window's backlog,
        # and its burst does not wait behind that backlog.
        async with temporary_database(database) as url:
            assert url is not None
            short = await measure_short_stock(database, url, min(SHORT_SECONDS, seconds))
        figure = WriteFigure(database, window, short)
        print_write_figure(figure)
        figures.append(figure)
    return figures


def print_write_figure(figure: WriteFigure) -> None:
    window, short, result = figure.window, figure.short, figure.window.result
    print(
        f"  {figure.database}: created {window.created_per_second:.1f}/s,"
        f" fulfilled {window.fulfilled_per_second:.1f}/s over {window.seconds:.1f} s;"
        f" create p50 {result.p50_seconds * 1000:.0f} ms p99 {result.p99_seconds * 1000:.0f} ms;"
        f" backlog {window.backlog_at_end} at the end, {window.backlog_later}"
        f" {BACKLOG_RECHECK_SECONDS} s later; server CPU {window.server_cpu_seconds:.1f} s"
        f" ({window.created_per_server_cpu_second:.0f} created per CPU-second){result.trouble()}",
        flush=True,
    )
    print(
        f"  {figure.database}: stock of {len(window.batches)} batches,"
        f" {len(window.oversold)} oversold; short stock: {short.fulfilled} fulfilled"
        f" (of {SHORT_FULFILLABLE} possible), {short.waiting} waiting,"
        f" {short.remaining_grams} g left",
        flush=True,
    )
