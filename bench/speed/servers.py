"""The processes a speed run starts: each server alone on CPU 0, on a port of its own range."""

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.accounts.keys import derive_demo_api_key
from app.accounts.models import Mode

SERVER_CPU = "0"
# This benchmark's own range on the shared machine; BENCH_PORT_BASE moves it (parallel runs).
_PORT_BASE = int(os.environ.get("BENCH_PORT_BASE", "18000"))
PORTS = range(_PORT_BASE, _PORT_BASE + 100)
SECRET = "bench-secret"  # noqa: S105 (throwaway databases' servers)
TEST_KEY = derive_demo_api_key(SECRET, Mode.TEST, admin=False)
ADMIN_TEST_KEY = derive_demo_api_key(SECRET, Mode.TEST, admin=True)
# What every one of our processes gets: no rate limit (the bench is one client far over any
# plan) and no per-request access log line (the ceiling writes none either).
OUR_ENVIRONMENT = {
    "CG_SECRET_KEY": SECRET,
    "CG_RATE_LIMIT_PER_SECOND": "0",
    "CG_LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


@dataclass
class Process:
    name: str
    process: "subprocess.Popen[bytes]"
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def cpu_seconds(self) -> float:
        """User + system CPU time so far: the machine is shared, so work per CPU-second
        compares runs better than work per wall-clock second."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def discard_log(self) -> None:
        self.log.unlink(missing_ok=True)


@dataclass
class Server(Process):
    url: str


def spawn(name: str, command: list[str], environment: Mapping[str, str], cpu: str) -> Process:
    """`command` pinned to `cpu`, its output in a log file of its own."""
    log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
    with log.open("w") as output:
        process = subprocess.Popen(
            ["taskset", "-c", cpu, *command],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **environment},
        )
    return Process(name, process, log)


@contextlib.asynccontextmanager
async def started(
    name: str, command: list[str], environment: Mapping[str, str], cpu: str = SERVER_CPU
) -> AsyncIterator[Server]:
    """Run `command` (which gets `--port N` appended) pinned to `cpu` until /healthz answers;
    stop it on leaving."""
    port = free_port()
    spawned = spawn(name, [*command, "--port", str(port)], environment, cpu)
    server = Server(name, spawned.process, spawned.log, f"http://127.0.0.1:{port}")
    try:
        await _until_healthy(server)
        yield server
    finally:
        await stopped(server)


@contextlib.asynccontextmanager
async def background_process(
    name: str, command: list[str], environment: Mapping[str, str], cpu: str
) -> AsyncIterator[Process]:
    """A process without a port (the fulfilment worker), pinned to `cpu`."""
    spawned = spawn(name, command, environment, cpu)
    try:
        await asyncio.sleep(1)
        if spawned.process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{spawned.output()}")
        yield spawned
    finally:
        await stopped(spawned)


async def _until_healthy(server: Server) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=1) as http:
        while True:
            try:
                if (await http.get(f"{server.url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} did not start:\n{server.output()}")
            await asyncio.sleep(0.1)


async def stopped(spawned: Process) -> None:
    process = spawned.process
    process.terminate()
    for _ in range(200):
        if process.poll() is not None:
            break
        await asyncio.sleep(0.1)
    else:
        process.kill()
        process.wait()
    spawned.discard_log()


def ours(database_url: str, **settings: str) -> tuple[list[str], dict[str, str]]:
    """`carbon-gateway serve` on `database_url` with extra CG_ settings (name=value)."""
    environment = {**OUR_ENVIRONMENT, "CG_DATABASE_URL": database_url}
    environment.update({f"CG_{name.upper()}": value for name, value in settings.items()})
    return [sys.executable, "-m", "app", "serve"], environment


def our_worker(database_url: str) -> tuple[list[str], dict[str, str]]:
    return [sys.executable, "-m", "app", "worker"], {
        **OUR_ENVIRONMENT,
        "CG_DATABASE_URL": database_url,
    }


def serve_like_ours(app_factory: str, port: int) -> None:
    """uvicorn with the flags `carbon-gateway serve` passes (app/cli.py), for the servers we
    compare against: the same HTTP protocol class, no log config, keep-alive timeout."""
    import uvicorn

    from app.config import Settings
    from app.http_limits import PROTOCOL_PATH

    uvicorn.run(
        app_factory,
        factory=True,
        host="127.0.0.1",
        port=port,
        log_config=None,
        proxy_headers=True,
        http=PROTOCOL_PATH,
        timeout_keep_alive=Settings().http_keep_alive_timeout,
    )
