"""Real `carbon-gateway serve` processes on free local ports (over real sockets), and
`carbon-gateway worker` processes beside them."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT_SECONDS = 30


@dataclass
class RunningServer:
    base_url: str
    process: subprocess.Popen[str]
    output_path: Path

    def output(self) -> str:
        return self.output_path.read_text()

    def demo_key(self, mode: str, role: str) -> str:
        for line in self.output().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == mode and parts[1] == role:
                return parts[2]
        raise AssertionError(f"no {mode} {role} demo key in:\n{self.output()}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(database_url: str, env: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "CG_DATABASE_URL": database_url,
        "CG_SECRET_KEY": "e2e-secret",
        "CG_RUN_WORKER": "true",
        "CG_RATE_LIMIT_PER_SECOND": "0",  # tests poll fast; rate limits have their own test
        **env,
    }


def _start(
    arguments: list[str], log_path: Path, environment: dict[str, str]
) -> "subprocess.Popen[str]":
    with log_path.open("w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "app", *arguments],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            text=True,
        )


def _stop(process: "subprocess.Popen[str]") -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@contextmanager
def launch(
    database_url: str, log_path: Path, port: int | None = None, **env: str
) -> Iterator[RunningServer]:
    """`python -m app serve` on `port` (else a free one); stopped when the block ends."""
    port = port or free_port()
    process = _start(["serve", "--port", str(port)], log_path, _environment(database_url, env))
    running = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited early:\n{running.output()}")
            try:
                if httpx.get(f"{running.base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{running.output()}")
            time.sleep(0.1)
        yield running
    finally:
        _stop(process)


@dataclass
class RunningWorker:
    process: "subprocess.Popen[str]"
    output_path: Path

    def output(self) -> str:
        return self.output_path.read_text()


@contextmanager
def launch_worker(database_url: str, log_path: Path, **env: str) -> Iterator[RunningWorker]:
    """`python -m app worker` (fulfilment, relay, webhooks), running once its loops log that
    they started; stopped when the block ends."""
    process = _start(["worker"], log_path, _environment(database_url, env))
    running = RunningWorker(process, log_path)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while "fulfilment worker started" not in running.output():
            if process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{running.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker did not start:\n{running.output()}")
            time.sleep(0.1)
        yield running
    finally:
        _stop(process)


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    with launch(database_url, tmp_path / "server.log") as running:
        yield running
