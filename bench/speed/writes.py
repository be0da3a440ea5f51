"""The write path under 32 concurrent clients: `createOrderByMass` from wrk for a fixed window,
orders created and fulfilled per second counted in the database, the backlog, and a burst
against short stock that must not oversell."""

import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class WriteFigure:
    database: str
    seconds: float
    created: int
    fulfilled: int
    result: wrk.WrkResult
    backlog_at_end: int
    backlog_later: int
    batches: list[BatchStock]
    short_fulfilled: int
    short_waiting: int
    short_remaining_grams: int

    @property
    def created_per_second(self) -> float:
        return self.created / self.seconds

    @property
    def fulfilled_per_second(self) -> float:
        return self.fulfilled / self.seconds

    @property
    def oversold(self) -> list[BatchStock]:
        return [batch for batch in self.batches if batch.oversold]

    @property
    def short_stock_held(self) -> bool:
        """The short-stock burst took exactly the stock there was and left the rest waiting."""
        return (
            self.short_fulfilled == SHORT_FULFILLABLE
            and self.short_remaining_grams == 0
            and self.short_waiting > 0
        )


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


async def short_stock_portfolio(server: Server) -> str:
    project = await graphql(
        server,
        ADMIN_TEST_KEY,
        """mutation($input: CreateProjectInput!) { createProject(input: $input) {
          project { id } userErrors { code message } } }""",
        {
            "input": {
                "name": "Bench short stock",
                "type": "REFORESTATION",
                "registry": "Verra",
                "registryId": "BENCH-SHORT",
                "country": "BR",
            }
        },
    )
    project_id = project["createProject"]["project"]["id"]
    for index, grams in enumerate(SHORT_BATCH_GRAMS):
        await graphql(
            server,
            ADMIN_TEST_KEY,
            """mutation($input: AddCreditBatchInput!) { addCreditBatch(input: $input) {
              creditBatch { id } userErrors { code message } } }""",
            {
                "input": {
                    "projectId": project_id,
                    "quantity": {"amount": str(grams), "unit": "G"},
                    "serialPrefix": f"BENCH-SHORT-{index}",
                    "vintage": 2020 + index,
                }
            },
        )
    bundle = await graphql(
        server,
        ADMIN_TEST_KEY,
        """mutation($input: CreateBundleInput!) { createBundle(input: $input) {
          bundle { id } userErrors { code message } } }""",
        {
            "input": {
                "name": "Bench short stock",
                "projectIds": [project_id],
                "unitPrice": {"amount": "10.00", "currency": "USD"},
            }
        },
    )
    portfolio = await graphql(
        server,
        ADMIN_TEST_KEY,
        """mutation($input: CreatePortfolioInput!) { createPortfolio(input: $input) {
          portfolio { id } userErrors { code message } } }""",
        {
            "input": {
                "name": "Bench short stock",
                "bundles": [{"bundleId": bundle["createBundle"]["bundle"]["id"], "weight": "100"}],
            }
        },
    )
    return str(portfolio["createPortfolio"]["portfolio"]["id"])


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


async def measure_writes(
    database: str, database_url: str, seconds: float, warm_up_seconds: float
) -> WriteFigure:
    """The short-stock burst, a warm-up, the measured window, the backlog then and
    BACKLOG_RECHECK_SECONDS later, and the stock check of every batch."""
    run = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as name:
        folder = Path(name)
        async with write_setup(database, database_url) as server:
            db = BenchDatabase(database_url)
            try:
                await graphql(server, TEST_KEY, CREATE, {"key": f"check-{run}"})
                # Short stock first: its waiting orders then stay aside (awaiting inventory)
                # instead of queueing behind the window's backlog.
                portfolio_id = await short_stock_portfolio(server)
                short_prefix = f"short-{run}-"
                short_seconds = min(SHORT_SECONDS, seconds)
                await run_window(server, folder, short_prefix, short_seconds, portfolio_id)
                short = await short_stock_settled(db, short_prefix)

                await run_window(server, folder, f"warm-{run}-", warm_up_seconds)
                window_prefix = f"bench-{run}-"
                before = await db.orders_by_state(except_prefix=short_prefix)
                elapsed, result = await run_window(server, folder, window_prefix, seconds)
                after = await db.orders_by_state(except_prefix=short_prefix)
                # Created: the window's own orders (a warm-up request still in flight when
                # the window opens commits inside it). Fulfilled: whatever the worker
                # finished inside the window, warm-up orders included.
                created_in_window = (await db.orders_by_state(window_prefix)).total()
                await asyncio.sleep(BACKLOG_RECHECK_SECONDS)
                later = await db.orders_by_state(except_prefix=short_prefix)
                batches = await db.batch_stock()
            finally:
                await db.dispose()
    short_batches = [b for b in batches if b.serial_prefix.startswith("BENCH-SHORT-")]
    return WriteFigure(
        database=database,
        seconds=elapsed,
        created=created_in_window,
        fulfilled=after["FULFILLED"] - before["FULFILLED"],
        result=result,
        backlog_at_end=after["PLACED"],
        backlog_later=later["PLACED"],
        batches=batches,
        short_fulfilled=short["FULFILLED"],
        short_waiting=short["PLACED"],
        short_remaining_grams=sum(batch.remaining_grams for batch in short_batches),
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


async def run_writes(
    databases: list[str], seconds: float, warm_up_seconds: float
) -> list[WriteFigure]:
    figures = []
    for database in databases:
        print(f"writes: {database}, {CONNECTIONS} clients, {seconds:g} s …", flush=True)
        if database == "sqlite":
            with tempfile.TemporaryDirectory(prefix="bench-writes-db-") as folder:
                figure = await measure_writes(
                    database, f"sqlite+aiosqlite:///{folder}/writes.db", seconds, warm_up_seconds
                )
        else:
            name = await postgres_database()
            if name is None:
                continue
            try:
                figure = await measure_writes(database, url_of(name), seconds, warm_up_seconds)
            finally:
                await drop_postgres_database(name)
        print_write_figure(figure)
        figures.append(figure)
    return figures


def print_write_figure(figure: WriteFigure) -> None:
    result = figure.result
    print(
        f"  {figure.database}: created {figure.created_per_second:.1f}/s,"
        f" fulfilled {figure.fulfilled_per_second:.1f}/s over {figure.seconds:.1f} s;"
        f" create p50 {result.p50_seconds * 1000:.0f} ms p99 {result.p99_seconds * 1000:.0f} ms;"
        f" backlog {figure.backlog_at_end} at the end, {figure.backlog_later}"
        f" {BACKLOG_RECHECK_SECONDS} s later"
        + (f"; FAILED responses {result.failed}" if result.failed else "")
        + (f"; socket errors {result.socket_errors}" if result.socket_errors else ""),
        flush=True,
    )
    print(
        f"  {figure.database}: stock of {len(figure.batches)} batches,"
        f" {len(figure.oversold)} oversold; short stock: {figure.short_fulfilled} fulfilled"
        f" (of {SHORT_FULFILLABLE} possible), {figure.short_waiting} waiting,"
        f" {figure.short_remaining_grams} g left",
        flush=True,
    )
