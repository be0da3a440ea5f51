"""Live-event fan-out on one real server process: idle sockets held, deliveries per second,
commit-to-delivery latency, and an ordinary query's latency during the burst.

    .venv/bin/python -m bench.fanout [--sockets 5000] [--subscribers 1000] [--orders 100]
                                     [--rate ORDERS_PER_SECOND] [--database postgresql|sqlite]
                                     [--port PORT]

1. Opens `--sockets` idle graphql-transport-ws connections (acknowledged, no subscription)
   and reports the server's resident memory per socket.
2. Opens `--subscribers` account-wide `orderStatusChanged` subscriptions (20 per socket, the
   per-socket maximum), then places `--orders` orders 10 at a time (or `--rate` per second,
   spread evenly). Each order is PLACED then FULFILLED, so every subscriber must receive
   2 x orders events. Reports deliveries/s (from the first order to the last delivery) and per
   second of server CPU time (steadier than wall-clock time on a shared machine), the p50/p99
   of commit → delivery (`occurredAt`, set in the committing transaction, to the moment the
   client reads the message), and the p50/p99 of a small `order(id)` query sent every 20 ms
   over HTTP meanwhile, from a process of its own.

The server runs on a temporary PostgreSQL database (BENCH_DATABASE_URL, default
postgresql+asyncpg://postgres@127.0.0.1:5432/test) or a temporary SQLite file, with its
in-process worker; the load comes from this process (Python `websockets`), on the same machine.
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.synchronize
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.databases import drop_postgres_database, postgres_database, url_of
from bench.order_latency import demo_test_key, free_port

PER_SOCKET = 20  # the server's max_subscriptions_per_connection
PLACE_CONCURRENTLY = 10
SUBSCRIPTION = """subscription {
  orderStatusChanged { sequence previousState state occurredAt order { id state mass { amount } } }
}"""
CREATE = """mutation { createOrderByMass(input: {mass: {amount: "1", unit: KG}}) {
  order { id } userErrors { code } } }"""
QUERY = "query($id: ID!) { order(id: $id) { id state } }"


@dataclass
class Server:
    process: "subprocess.Popen[bytes]"
    base_url: str
    log: Path

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/graphql"

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server so far: on a shared machine, deliveries per
        CPU-second compare runs better than deliveries per wall-clock second."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


@contextlib.contextmanager
def serve(database_url: str, port: int | None = None) -> Iterator[Server]:
    port = port or free_port()
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    env = {
        **os.environ,
        "CG_DATABASE_URL": database_url,
        "CG_SECRET_KEY": "bench-secret",
        "CG_RATE_LIMIT_PER_SECOND": "0",
        "CG_LOG_LEVEL": "WARNING",  # an access log line per request would be part of the bench
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text()) from None
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.unlink(missing_ok=True)


async def open_socket(server: Server, key: str) -> ClientConnection:
    socket = await connect(
        server.ws_url,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        compression=None,
        max_queue=None,
        open_timeout=30,
    )
    await socket.send(json.dumps({"type": "connection_init", "payload": {"apiKey": key}}))
    ack = json.loads(await socket.recv())
    assert ack["type"] == "connection_ack", ack
    return socket


async def open_sockets(server: Server, key: str, count: int) -> list[ClientConnection]:
    limit = asyncio.Semaphore(100)

    async def one() -> ClientConnection:
        async with limit:
            return await open_socket(server, key)

    return list(await asyncio.gather(*(one() for _ in range(count))))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def idle_sockets(server: Server, key: str, count: int) -> None:
    before = server.rss_bytes()
    started = time.perf_counter()
    sockets = await open_sockets(server, key, count)
    opened = time.perf_counter() - started
    await asyncio.sleep(1)
    after = server.rss_bytes()
    print(
        f"idle sockets: {len(sockets)} held in one process (opened in {opened:.1f} s); "
        f"server RSS {before / 2**20:.0f} → {after / 2**20:.0f} MiB, "
        f"{(after - before) / len(sockets) / 1024:.1f} KiB per socket"
    )
    await asyncio.gather(*(socket.close() for socket in sockets))


@dataclass
class Deliveries:
    expected: int
    probes: set[str] = field(default_factory=set)
    measuring: bool = False  # until set, every delivery is a probe's
    registered: set[str] = field(default_factory=set)  # subscriptions that saw the probe
    subscribers: int = 0
    all_registered: asyncio.Event = field(default_factory=asyncio.Event)
    count: int = 0
    latencies: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    last_at: float = 0.0


async def read_deliveries(socket: ClientConnection, deliveries: Deliveries) -> None:
    async for raw in socket:
        received = time.time()
        message = orjson.loads(raw)
        if message.get("type") == "ping":  # the server's keep-alive: unanswered, it closes
            await socket.send('{"type":"pong"}')
            continue
        if message.get("type") != "next":
            continue
        change = message["payload"]["data"]["orderStatusChanged"]
        if not deliveries.measuring or change["order"]["id"] in deliveries.probes:
            deliveries.registered.add(message["id"])
            if len(deliveries.registered) >= deliveries.subscribers:
                deliveries.all_registered.set()
            continue
        occurred = datetime.fromisoformat(change["occurredAt"]).timestamp()
        deliveries.latencies.append(received - occurred)
        deliveries.count += 1
        deliveries.last_at = time.perf_counter()
        if deliveries.count >= deliveries.expected:
            deliveries.done.set()


def query_latencies(
    base_url: str,
    key: str,
    order_id: str,
    ready: "multiprocessing.synchronize.Event",
    stop: "multiprocessing.synchronize.Event",
    results: "multiprocessing.Queue[list[float]]",
) -> None:
    """Times the ordinary query every 20 ms until `stop`, in a process of its own: in this
    one, its responses would wait behind the subscribers' backlog of messages to parse."""
    latencies = []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        while not stop.is_set():
            started = time.perf_counter()
            body = {"query": QUERY, "variables": {"id": order_id}}
            response = http.post("/graphql", json=body)
            assert response.status_code == 200, response.text
            latencies.append(time.perf_counter() - started)
            ready.set()
            time.sleep(0.02)
    results.put(latencies)


async def burst(
    server: Server, key: str, subscribers: int, orders: int, rate: float | None
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
        registering = time.perf_counter()
        sockets = await open_sockets(server, key, -(-subscribers // PER_SOCKET))
        for index in range(subscribers):
            payload = {"query": SUBSCRIPTION}
            message = {"id": str(index), "type": "subscribe", "payload": payload}
            await sockets[index // PER_SOCKET].send(json.dumps(message))
        deliveries = Deliveries(expected=subscribers * orders * 2, subscribers=subscribers)
        readers = [asyncio.create_task(read_deliveries(s, deliveries)) for s in sockets]
        # Probe orders until every subscription has seen one: then all of them are
        # registered (a subscription sees only events committed after it started).
        async with asyncio.timeout(30):
            while not deliveries.all_registered.is_set():
                probe = (await http.post("/graphql", json={"query": CREATE})).json()
                probe_id = probe["data"]["createOrderByMass"]["order"]["id"]
                deliveries.probes.add(probe_id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(deliveries.all_registered.wait(), timeout=1)
        print(
            f"registered {subscribers} subscriptions on {len(sockets)} sockets in "
            f"{time.perf_counter() - registering:.1f} s",
            flush=True,
        )
        await asyncio.sleep(0.5)  # and the probes' FULFILLED are out of the way
        deliveries.measuring = True

        processes = multiprocessing.get_context("spawn")
        ready, stop = processes.Event(), processes.Event()
        results: multiprocessing.Queue[list[float]] = processes.Queue()
        timer = processes.Process(
            target=query_latencies,
            args=(server.base_url, key, probe_id, ready, stop, results),
        )
        timer.start()
        # Started once the timing process is up and querying.
        assert await asyncio.to_thread(ready.wait, 30), "the query timer did not start"
        limit = asyncio.Semaphore(PLACE_CONCURRENTLY)

        async def place() -> None:
            async with limit:
                body = (await http.post("/graphql", json={"query": CREATE})).json()
                assert body["data"]["createOrderByMass"]["userErrors"] == [], body

        async def place_at(offset: float) -> None:
            await asyncio.sleep(offset)
            await place()

        started = time.perf_counter()
        cpu_before = server.cpu_seconds()
        client_cpu_before = time.process_time()
        if rate is None:
            await asyncio.gather(*(place() for _ in range(orders)))
        else:
            await asyncio.gather(*(place_at(index / rate) for index in range(orders)))
        placed = time.perf_counter() - started
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(deliveries.done.wait(), timeout=45)
        cpu = server.cpu_seconds() - cpu_before
        client_cpu = time.process_time() - client_cpu_before
        stop.set()
        query_times = await asyncio.to_thread(results.get, timeout=60)
        timer.join()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)

    elapsed = (deliveries.last_at or time.perf_counter()) - started
    print(
        f"burst: {subscribers} subscribers x {orders} orders ({orders * 2} events) placed in "
        f"{placed:.1f} s; {deliveries.count} of {deliveries.expected} deliveries in "
        f"{elapsed:.1f} s = {deliveries.count / elapsed:,.0f} deliveries/s; server CPU "
        f"{cpu:.1f} s = {deliveries.count / cpu:,.0f} deliveries per CPU-second; this "
        f"client's CPU {client_cpu:.1f} s"
    )
    if deliveries.latencies:
        print(
            f"commit → delivery: p50 {statistics.median(deliveries.latencies) * 1000:.0f} ms, "
            f"p99 {percentile(deliveries.latencies, 0.99) * 1000:.0f} ms, "
            f"max {max(deliveries.latencies) * 1000:.0f} ms"
        )
    print(
        f"ordinary query during the burst ({len(query_times)} requests): "
        f"p50 {statistics.median(query_times) * 1000:.0f} ms, "
        f"p99 {percentile(query_times, 0.99) * 1000:.0f} ms"
    )


async def run(database_url: str, arguments: argparse.Namespace) -> None:
    with serve(database_url, arguments.port) as server:
        key = demo_test_key(server.log.read_text())
        if arguments.sockets:
            await idle_sockets(server, key, arguments.sockets)
        if arguments.subscribers and arguments.orders:
            await burst(server, key, arguments.subscribers, arguments.orders, arguments.rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=5_000)
    parser.add_argument("--subscribers", type=int, default=1_000)
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument(
        "--rate",
        type=float,
        help="orders per second, spread evenly (default: as fast as 10 at a time go)",
    )
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--port", type=int, help="the server's port (default: a free one)")
    arguments = parser.parse_args()
    name = asyncio.run(postgres_database()) if arguments.database == "postgresql" else None
    if name is None:
        with tempfile.TemporaryDirectory() as folder:
            print("database: SQLite")
            asyncio.run(run(f"sqlite+aiosqlite:///{folder}/bench.db", arguments))
        return
    try:
        print("database: PostgreSQL")
        url = url_of(name)
        asyncio.run(run(url, arguments))
    finally:
        asyncio.run(drop_postgres_database(name))


if __name__ == "__main__":
    main()
