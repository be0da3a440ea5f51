"""A real `carbon-gateway serve` process on a free local port, over real sockets."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    port = free_port()
    output_path = tmp_path / "server.log"
    env = {
        **os.environ,
        "CG_DATABASE_URL": database_url,
        "CG_SECRET_KEY": "e2e-secret",
        "CG_RUN_WORKER": "true",
    }
    with output_path.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
    running = RunningServer(f"http://127.0.0.1:{port}", process, output_path)
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
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
