"""The nested read side by side: the ceiling, stock Strawberry, and our server uncached
(compiled plans on, and off), cached and by persisted-query hash, each a process of its own on
CPU 0 under wrk on CPU 1."""

import asyncio
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.speed import wrk
from bench.speed.database import BenchDatabase
from bench.speed.servers import TEST_KEY, Server, ours, started

CONNECTIONS = 16
PAGE = 20
SEEDED_ORDERS = 45  # a full page, and more, of fulfilled orders
NESTED_READ = (
    "query NestedRead { orders(first: 20) { edges { node { id state createdAt"
    " mass { amount unit } price { amount currency } certificate { id publicUrl }"
    " allocations { mass { amount unit } project { id name } bundle { id name }"
    " creditBatch { vintage } } } } } }"
)
SEED_ORDER = """mutation Seed($key: String!) {
  createOrderByMass(input: {mass: {amount: "1", unit: T}, idempotencyKey: $key}) {
    order { id } userErrors { code message } } }"""
CEILING = "ceiling (plain Starlette)"
STOCK = "stock Strawberry, in memory"
UNCACHED = "ours, uncached"
UNPLANNED = "ours, uncached, plans off"
CACHED = "ours, cached"
PERSISTED = "ours, APQ hash, uncached"
AUTHORIZATION = {"Authorization": f"Bearer {TEST_KEY}"}


@dataclass(frozen=True)
class ReadFigure:
    name: str
    result: wrk.WrkResult
    server_cpu_seconds: float

    @property
    def requests_per_cpu_second(self) -> float:
        return self.result.requests / self.server_cpu_seconds


def shape(value: Any) -> Any:
    """A JSON value with every scalar replaced by its type: what two servers must agree on."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def checked_answer(status: int, body: bytes) -> dict[str, Any]:
    """The answer of a read worth benchmarking: 200, no `errors`, a full page of orders with
    allocations; anything else stops the run (a benchmark of error responses is worthless)."""
    answer = json.loads(body)
    if status != 200 or "errors" in answer:
        raise RuntimeError(f"the nested read answered {status}: {body[:2000]!r}")
    edges = answer["data"]["orders"]["edges"]
    if len(edges) != PAGE or not all(edge["node"]["allocations"] for edge in edges):
        raise RuntimeError(f"not a full page of fulfilled orders: {body[:2000]!r}")
    return answer


async def post(server: Server, payload: dict[str, Any]) -> tuple[int, bytes]:
    async with httpx.AsyncClient(headers=AUTHORIZATION, timeout=30) as http:
        response = await http.post(f"{server.url}/graphql", json=payload)
        return response.status_code, response.content


async def seed_fulfilled_orders(database_url: str) -> None:
    """Demo data plus SEEDED_ORDERS orders, fulfilled by our own server's worker."""
    command, environment = ours(database_url)
    async with started("seed", command, environment, cpu="0,1") as server:
        for index in range(SEEDED_ORDERS):
            payload = {"query": SEED_ORDER, "variables": {"key": f"seed-{index}"}}
            status, body = await post(server, payload)
            created = json.loads(body)["data"]["createOrderByMass"]
            if status != 200 or created["userErrors"]:
                raise RuntimeError(f"seeding failed: {body!r}")
        database = BenchDatabase(database_url)
        try:
            deadline = time.monotonic() + 120
            while (await database.orders_by_state("seed-"))["FULFILLED"] < SEEDED_ORDERS:
                if time.monotonic() > deadline:
                    raise RuntimeError("the seeded orders were not fulfilled within 120 s")
                await asyncio.sleep(0.2)
        finally:
            await database.dispose()


async def measure(
    name: str, server: Server, payload: dict[str, Any], folder: Path, duration: float
) -> ReadFigure:
    script = folder / f"{name.replace(' ', '-')}.lua"
    script.write_text(wrk.static_post_script(json.dumps(payload), AUTHORIZATION))
    url = f"{server.url}/graphql"
    await wrk.run(url, script, warm_up_seconds(duration), CONNECTIONS)
    cpu_before = server.cpu_seconds()
    result = await wrk.run(url, script, duration, CONNECTIONS)
    figure = ReadFigure(name, result, server.cpu_seconds() - cpu_before)
    print(
        f"  {name:28} {result.requests_per_second:9.1f} req/s"
        f"  p50 {result.p50_seconds * 1000:7.2f} ms  p99 {result.p99_seconds * 1000:7.2f} ms"
        f"  {figure.requests_per_cpu_second:9.1f} per server CPU-second{result.trouble()}",
        flush=True,
    )
    return figure


def warm_up_seconds(duration: float) -> float:
    return 1 if duration < 5 else 3


async def run_reads(duration: float) -> list[ReadFigure]:
    read = {"query": NESTED_READ}
    figures: dict[str, ReadFigure] = {}
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as name:
        folder = Path(name)
        database_url = f"sqlite+aiosqlite:///{folder}/reads.db"
        print(f"reads: seeding {SEEDED_ORDERS} fulfilled orders …", flush=True)
        await seed_fulfilled_orders(database_url)
        response_file = folder / "response.json"

        command, environment = ours(database_url, run_worker="false", response_cache="false")
        async with started("ours-uncached", command, environment) as server:
            status, body = await post(server, read)
            ours_answer = checked_answer(status, body)
            response_file.write_bytes(body)
            figures[UNCACHED] = await measure(UNCACHED, server, read, folder, duration)
            persisted = await registered_persisted_query(server, ours_answer)
            figures[PERSISTED] = await measure(PERSISTED, server, persisted, folder, duration)

        # The same server without compiled plans (CG_COMPILED_PLANS=false): every read
        # through graphql-core's executor, as before plans.
        command, environment = ours(
            database_url, run_worker="false", response_cache="false", compiled_plans="false"
        )
        async with started("ours-unplanned", command, environment) as server:
            status, body_unplanned = await post(server, read)
            if body_unplanned != body:
                raise RuntimeError("the server without plans answered other bytes")
            figures[UNPLANNED] = await measure(UNPLANNED, server, read, folder, duration)

        ceiling = [sys.executable, "-m", "bench.speed.ceiling", str(response_file)]
        async with started("ceiling", ceiling, {}) as server:
            status, ceiling_body = await post(server, read)
            if status != 200 or ceiling_body != body:
                raise RuntimeError("the ceiling does not serve our server's bytes")
            figures[CEILING] = await measure(CEILING, server, read, folder, duration)

        stock = [sys.executable, "-m", "bench.speed.stock_strawberry", str(response_file)]
        async with started("stock-strawberry", stock, {}) as server:
            status, stock_body = await post(server, read)
            if shape(checked_answer(status, stock_body)["data"]) != shape(ours_answer["data"]):
                raise RuntimeError(f"stock Strawberry's answer has another shape: {stock_body!r}")
            figures[STOCK] = await measure(STOCK, server, read, folder, duration)

        command, environment = ours(database_url, run_worker="false", response_cache="true")
        async with started("ours-cached", command, environment) as server:
            status, cached_body = await post(server, read)
            if shape(checked_answer(status, cached_body)["data"]) != shape(ours_answer["data"]):
                raise RuntimeError(f"the cached server answered another shape: {cached_body!r}")
            figures[CACHED] = await measure(CACHED, server, read, folder, duration)
    return [figures[name] for name in (CEILING, STOCK, UNCACHED, UNPLANNED, CACHED, PERSISTED)]


async def registered_persisted_query(server: Server, expected: dict[str, Any]) -> dict[str, Any]:
    """Register the nested read by APQ and return the hash-only request, checked."""
    sha256 = hashlib.sha256(NESTED_READ.encode()).hexdigest()
    by_hash = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256}}}
    status, body = await post(server, {"query": NESTED_READ, **by_hash})
    checked_answer(status, body)
    status, body = await post(server, by_hash)
    if checked_answer(status, body)["data"] != expected["data"]:
        raise RuntimeError("the persisted query answered other data than the query text")
    return by_hash
