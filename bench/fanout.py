"""Live-event fan-out on one real server process: idle sockets held, deliveries per second,
commit-to-delivery latency, and an ordinary query's latency during the burst.

    .venv/bin/python -m bench.fanout [--sockets 5000] [--subscribers 1000] [--orders 100]
                                     [--rate ORDERS_PER_SECOND] [--database postgresql|sqlite]
                                     [--timers 4] [--port PORT]

1. Opens `--sockets` idle graphql-transport-ws connections (acknowledged, no subscription)
   and reports the server's resident memory per socket.
2. Opens `--subscribers` account-wide `orderStatusChanged` subscriptions (20 per socket, the
   per-socket maximum), then places `--orders` orders 10 at a time (or `--rate` per second,
   spread evenly). Each order is PLACED then FULFILLED, so every subscriber must receive
   2 x orders events. Reports deliveries/s (from the first order to the last delivery) and
   server CPU time per delivery (steadier than wall-clock time on a shared machine); checks
   that every subscription received each of the burst's events exactly once, in strictly
   increasing sequence; then the p50/p99 of commit → delivery (`occurredAt`, the server's clock
   when it built the event row, before its transaction committed, to the moment the client
   reads the message), the time of each event from occurred to published (by the relay) to its
   first and last delivery, and the p50/p99 of a small `order(id)` query sent every 20 ms over
   HTTP meanwhile by each of `--timers` processes of their own (several, so that the p99 of a
   burst of a few seconds is not merely its slowest request). The probe orders' events count
   in no figure.

The server runs on a temporary PostgreSQL database (BENCH_DATABASE_URL, default
postgresql+asyncpg://postgres@127.0.0.1:5432/test) or a temporary SQLite file, with its
in-process worker; the load comes from this process (`picows`, frames parsed in C), on the
same machine.
"""

import argparse
import asyncio
import contextlib
import gc
import itertools
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
from typing import Any

import httpx
import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect
from sqlmodel import col, select

from app.db import Database
from app.events.models import Event
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
def serve(
    database_url: str, port: int | None = None, *, separate_worker: bool = False
) -> Iterator[Server]:
    """The server, with its in-process worker or, with `separate_worker`, beside a
    `carbon-gateway worker` process of its own (started once the server has migrated), the
    two on Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379/14)."""
    port = port or free_port()
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    env = {
        **os.environ,
        "CG_DATABASE_URL": database_url,
        "CG_SECRET_KEY": "bench-secret",
        "CG_RATE_LIMIT_PER_SECOND": "0",
        "CG_LOG_LEVEL": "WARNING",  # an access log line per request would be part of the bench
        "CG_RUN_WORKER": "false" if separate_worker else "true",
    }
    if separate_worker:
        # The doorbell between the two processes, as the README's setups with a worker have.
        env["CG_REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    worker: subprocess.Popen[bytes] | None = None
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
        if separate_worker:
            with log.open("a") as output:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "app", "worker"],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
        yield server
    finally:
        for child in (worker, process):
            if child is not None:
                child.terminate()
                child.wait(timeout=20)
        log.unlink(missing_ok=True)


class GraphQLSocket(WSListener):
    """One graphql-transport-ws connection (picows: frames parsed in C, so the client costs
    a fraction of the server's CPU on the same cores). It answers the server's pings, as real
    clients do, and records every `next` it reads: per subscription the sequences in arrival
    order with their arrival times, and each event's fields the first time any subscription
    sees it."""

    def __init__(self, deliveries: "Deliveries | None" = None) -> None:
        self.deliveries = deliveries
        self.transport: WSTransport | None = None
        self.acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def send(self, message: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, orjson.dumps(message))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            if frame.msg_type is WSMsgType.CLOSE:
                transport.disconnect()
            return
        received = time.time()
        message = orjson.loads(frame.get_payload_as_bytes())
        kind = message["type"]
        if kind == "next" and self.deliveries is not None:
            self.deliveries.record(message, received)
        elif kind == "ping":  # the server's keep-alive: unanswered, it closes the socket
            transport.send(WSMsgType.TEXT, b'{"type":"pong"}')
        elif kind == "connection_ack":
            self.acknowledged.set_result(None)
        elif kind in ("error", "complete"):
            raise AssertionError(f"unexpected {message}")

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            # 1000, as browsers close; picows's default is 1005, a code no peer may send.
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()


async def open_socket(
    server: Server, key: str, deliveries: "Deliveries | None" = None
) -> GraphQLSocket:
    _, socket = await ws_connect(
        lambda: GraphQLSocket(deliveries),
        server.ws_url,
        extra_headers={"Sec-WebSocket-Protocol": "graphql-transport-ws"},
        websocket_handshake_timeout=30,
    )
    assert isinstance(socket, GraphQLSocket)
    socket.send({"type": "connection_init", "payload": {"apiKey": key}})
    await asyncio.wait_for(socket.acknowledged, 30)
    return socket


async def open_sockets(
    server: Server, key: str, count: int, deliveries: "Deliveries | None" = None
) -> list[GraphQLSocket]:
    limit = asyncio.Semaphore(100)

    async def one() -> GraphQLSocket:
        async with limit:
            return await open_socket(server, key, deliveries)

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
    for socket in sockets:
        socket.close()
    await asyncio.sleep(1)


@dataclass
class Deliveries:
    """What the subscriptions received. Until `measuring`, and for the probe orders' events
    always, deliveries only register subscriptions; the rest are the burst's."""

    expected: int
    subscribers: int
    probes: set[str] = field(default_factory=set)
    measuring: bool = False
    registered: set[str] = field(default_factory=set)  # subscriptions that saw a probe
    all_registered: asyncio.Event = field(default_factory=asyncio.Event)
    # Per subscription: every sequence received, in arrival order, and the burst's arrivals.
    sequences: dict[str, list[int]] = field(default_factory=dict)
    arrivals: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    events: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # order, state, at
    count: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    last_at: float = 0.0

    def record(self, message: dict[str, Any], received: float) -> None:
        subscription = message["id"]
        change = message["payload"]["data"]["orderStatusChanged"]
        sequence = change["sequence"]
        self.sequences.setdefault(subscription, []).append(sequence)
        order_id = change["order"]["id"]
        if sequence not in self.events:
            self.events[sequence] = (order_id, change["state"], change["occurredAt"])
        if not self.measuring or order_id in self.probes:
            self.registered.add(subscription)
            if len(self.registered) >= self.subscribers:
                self.all_registered.set()
            return
        self.arrivals.setdefault(subscription, []).append((sequence, received))
        self.count += 1
        self.last_at = time.perf_counter()
        if self.count >= self.expected:
            self.done.set()

    def check(self, placed: set[str]) -> list[int]:
        """The burst's sequences, after checking that every subscription received each of
        them exactly once and every sequence in strictly increasing order."""
        burst = sorted(s for s, (order, _, _) in self.events.items() if order in placed)
        assert len(burst) == 2 * len(placed), f"{len(burst)} events of {len(placed)} orders"
        assert len(self.sequences) == self.subscribers, "a subscription received nothing"
        for subscription, sequences in self.sequences.items():
            assert all(a < b for a, b in itertools.pairwise(sequences)), (
                f"subscription {subscription}: sequences not strictly increasing"
            )
            got = [s for s, _ in self.arrivals.get(subscription, [])]
            assert got == burst, f"subscription {subscription}: {len(got)} of {len(burst)}"
        return burst


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
    # This process imported the bench and the app's models: ~90,000 objects, whose full
    # collections (60-140 ms here) would be timed as the server's latency. Frozen, the
    # collector no longer walks them; the loop itself makes little garbage.
    gc.collect()
    gc.freeze()
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


async def published_times(
    database_url: str, sequences: list[int]
) -> dict[int, tuple[float, float]]:
    """Each event's `occurred_at` (when its transaction wrote the row) and `published_at`
    (when the relay numbered it, inside the relay's transaction) as Unix times."""
    db = Database.from_url(database_url)
    try:
        async with db.session() as session:
            rows = (
                await session.exec(
                    select(Event.sequence, Event.occurred_at, Event.published_at).where(
                        col(Event.sequence).in_(sequences)
                    )
                )
            ).all()
    finally:
        await db.engine.dispose()
    return {
        sequence: (occurred.timestamp(), published.timestamp())
        for sequence, occurred, published in rows
        if sequence is not None and published is not None
    }


def stages(
    deliveries: Deliveries, burst: list[int], published: dict[int, tuple[float, float]]
) -> None:
    """Where an event's time goes, per event of the burst: occurred (its row written) →
    published (numbered by the relay) → first delivery → last delivery (of its 1,000)."""
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for arrivals in deliveries.arrivals.values():
        for sequence, received in arrivals:
            if received < first.get(sequence, float("inf")):
                first[sequence] = received
            if received > last.get(sequence, 0.0):
                last[sequence] = received
    parts = {
        "occurred → published": [published[s][1] - published[s][0] for s in burst],
        "published → first delivery": [first[s] - published[s][1] for s in burst],
        "first → last delivery": [last[s] - first[s] for s in burst],
    }
    print(
        "stages per event (p50 / p99 / max ms): "
        + "; ".join(
            f"{name} {statistics.median(values) * 1000:.0f} / "
            f"{percentile(values, 0.99) * 1000:.0f} / {max(values) * 1000:.0f}"
            for name, values in parts.items()
        )
    )


async def burst(
    server: Server,
    database_url: str,
    key: str,
    subscribers: int,
    orders: int,
    rate: float | None,
    timer_count: int,
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
        registering = time.perf_counter()
        deliveries = Deliveries(expected=subscribers * orders * 2, subscribers=subscribers)
        sockets = await open_sockets(server, key, -(-subscribers // PER_SOCKET), deliveries)
        for index in range(subscribers):
            payload = {"query": SUBSCRIPTION}
            message = {"id": str(index), "type": "subscribe", "payload": payload}
            sockets[index // PER_SOCKET].send(message)
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
        # This process's full collections would delay its reading of deliveries, timed as the
        # server's latency: what exists now is frozen, and the burst's records wait until the end.
        gc.collect()
        gc.freeze()
        gc.disable()

        processes = multiprocessing.get_context("spawn")
        stop = processes.Event()
        results: multiprocessing.Queue[list[float]] = processes.Queue()
        timers = []
        for _ in range(timer_count):
            ready = processes.Event()
            timer = processes.Process(
                target=query_latencies,
                args=(server.base_url, key, probe_id, ready, stop, results),
            )
            timer.start()
            timers.append((timer, ready))
        # Started once every timing process is up and querying.
        for _, ready in timers:
            assert await asyncio.to_thread(ready.wait, 30), "a query timer did not start"
        limit = asyncio.Semaphore(PLACE_CONCURRENTLY)
        placed_ids: set[str] = set()

        async def place() -> None:
            async with limit:
                body = (await http.post("/graphql", json={"query": CREATE})).json()
                assert body["data"]["createOrderByMass"]["userErrors"] == [], body
                placed_ids.add(body["data"]["createOrderByMass"]["order"]["id"])

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
        query_times = [
            latency for _ in timers for latency in await asyncio.to_thread(results.get, timeout=60)
        ]
        for timer, _ in timers:
            timer.join()
        await asyncio.sleep(0.2)  # a duplicate or a late delivery would arrive meanwhile
        gc.enable()
        for socket in sockets:
            socket.close()

    elapsed = (deliveries.last_at or time.perf_counter()) - started
    print(
        f"burst: {subscribers} subscribers x {orders} orders ({orders * 2} events) placed in "
        f"{placed:.1f} s; {deliveries.count} of {deliveries.expected} deliveries in "
        f"{elapsed:.1f} s = {deliveries.count / elapsed:,.0f} deliveries/s; server CPU "
        f"{cpu:.2f} s = {cpu / max(deliveries.count, 1) * 1e6:.1f} µs per delivery "
        f"({deliveries.count / cpu:,.0f} deliveries per CPU-second); this client's CPU "
        f"{client_cpu:.2f} s"
    )
    sequences = deliveries.check(placed_ids)
    print(
        f"checked: every one of {subscribers} subscriptions received each of the burst's "
        f"{len(sequences)} events exactly once, all sequences strictly increasing"
    )
    occurred_at = {
        s: datetime.fromisoformat(deliveries.events[s][2]).timestamp() for s in sequences
    }
    latencies = [
        received - occurred_at[sequence]
        for arrivals in deliveries.arrivals.values()
        for sequence, received in arrivals
    ]
    print(
        f"commit → delivery: p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )
    stages(deliveries, sequences, await published_times(database_url, sequences))
    print(
        f"ordinary query during the burst ({len(query_times)} requests from "
        f"{timer_count} processes): "
        f"p50 {statistics.median(query_times) * 1000:.0f} ms, "
        f"p99 {percentile(query_times, 0.99) * 1000:.0f} ms, "
        f"max {max(query_times) * 1000:.0f} ms"
    )


async def run(database_url: str, arguments: argparse.Namespace) -> None:
    separate = arguments.worker == "separate"
    with serve(database_url, arguments.port, separate_worker=separate) as server:
        key = demo_test_key(server.log.read_text())
        if arguments.sockets:
            await idle_sockets(server, key, arguments.sockets)
        if arguments.subscribers and arguments.orders:
            await burst(
                server,
                database_url,
                key,
                arguments.subscribers,
                arguments.orders,
                arguments.rate,
                arguments.timers,
            )


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
    parser.add_argument(
        "--timers", type=int, default=4, help="processes timing the ordinary query (default 4)"
    )
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--port", type=int, help="the server's port (default: a free one)")
    parser.add_argument(
        "--worker",
        choices=["in-process", "separate"],
        default="in-process",
        help="fulfilment in the server's process, or in a `carbon-gateway worker` beside it",
    )
    arguments = parser.parse_args()
    name = asyncio.run(postgres_database()) if arguments.database == "postgresql" else None
    if name is None:
        with tempfile.TemporaryDirectory() as folder:
            print(f"database: SQLite, worker: {arguments.worker}")
            asyncio.run(run(f"sqlite+aiosqlite:///{folder}/bench.db", arguments))
        return
    try:
        print(f"database: PostgreSQL, worker: {arguments.worker}")
        url = url_of(name)
        asyncio.run(run(url, arguments))
    finally:
        asyncio.run(drop_postgres_database(name))


if __name__ == "__main__":
    main()
