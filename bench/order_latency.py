"""Latency from createOrderByMass to FULFILLED on a real server with its in-process worker.

    .venv/bin/python -m bench.order_latency [orders]

Starts `carbon-gateway serve` on a free port over a temporary SQLite file (and over a
temporary PostgreSQL database when BENCH_DATABASE_URL's server answers), places orders one
after another with the demo test key, polls each until it is fulfilled, and prints p50, p95
and max. The issue's target: typically under a second.
"""

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.databases import drop_postgres_database, postgres_database, url_of

CREATE = """mutation($key: String!) {
  createOrderByMass(input: {mass: {amount: "1", unit: T}, idempotencyKey: $key}) {
    order { id } userErrors { code message }
  }
}"""
STATE = "query($id: ID!) { order(id: $id) { state } }"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo_test_key(output: str) -> str:
    for line in output.splitlines():
        parts = line.split()
        if parts[:2] == ["test", "standard"]:
            return parts[2]
    raise RuntimeError(f"no demo key in server output:\n{output}")


def measure(database_url: str, orders: int) -> list[float]:
    port = free_port()
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    env = {
        **os.environ,
        "CG_DATABASE_URL": database_url,
        "CG_SECRET_KEY": "bench-secret",
        "CG_RATE_LIMIT_PER_SECOND": "0",  # the bench polls faster than a client should
    }
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(log.read_text()) from None
                time.sleep(0.1)
        headers = {"Authorization": f"Bearer {demo_test_key(log.read_text())}"}
        latencies = []
        with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
            for index in range(orders):
                started = time.perf_counter()
                body = http.post(
                    "/graphql", json={"query": CREATE, "variables": {"key": f"bench-{index}"}}
                ).json()
                order_id = body["data"]["createOrderByMass"]["order"]["id"]
                while True:
                    state = http.post(
                        "/graphql", json={"query": STATE, "variables": {"id": order_id}}
                    ).json()["data"]["order"]["state"]
                    if state == "FULFILLED":
                        break
                    time.sleep(0.005)
                latencies.append(time.perf_counter() - started)
        return latencies
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.unlink(missing_ok=True)


def report(name: str, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    print(
        f"{name:10} {len(ordered)} orders  create→FULFILLED  "
        f"p50 {statistics.median(ordered) * 1000:.0f} ms  p95 {p95 * 1000:.0f} ms  "
        f"max {ordered[-1] * 1000:.0f} ms"
    )


def main() -> None:
    orders = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    with tempfile.TemporaryDirectory() as folder:
        report("SQLite", measure(f"sqlite+aiosqlite:///{folder}/bench.db", orders))
    name = asyncio.run(postgres_database())
    if name:
        try:
            url = url_of(name)
            report("PostgreSQL", measure(url, orders))
        finally:
            asyncio.run(drop_postgres_database(name))


if __name__ == "__main__":
    main()
