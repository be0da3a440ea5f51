"""A real server drops clients that send a request too slowly, or headers too large, at the
documented limits (app/http_limits.py, README "Server timeouts")."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from app.config import Settings
from tests.e2e.conftest import RunningServer, launch

DEFAULTS = Settings.model_construct()  # the documented defaults, whatever the environment
BODY_TIMEOUT = 2.0  # shortened for the test; the header timeout keeps its default
SLACK = 1.5  # scheduling and process start-up on a busy 2-core machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("http-limits")
    database_url = f"sqlite+aiosqlite:///{folder}/limits.db"
    with launch(
        database_url, folder / "server.log", CG_HTTP_BODY_TIMEOUT=str(BODY_TIMEOUT)
    ) as running:
        yield running


def _connect(server: RunningServer) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _response(connection: socket.socket) -> bytes:
    """One whole response (headers and a content-length body), however it is split."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


def _until_closed(connection: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def test_half_sent_and_silent_connections_are_closed_at_the_header_timeout(
    server: RunningServer,
) -> None:
    results: dict[str, tuple[bytes, float]] = {}

    def watch(name: str, first_bytes: bytes) -> None:
        with _connect(server) as connection:
            connection.sendall(first_bytes)
            results[name] = _until_closed(connection)

    watchers = [
        threading.Thread(target=watch, args=("half", b"POST /graphql HTT")),
        threading.Thread(target=watch, args=("silent", b"")),
        threading.Thread(target=watch, args=("no end", b"GET /healthz HTTP/1.1\r\nHost: x\r\n")),
    ]
    for watcher in watchers:
        watcher.start()
    for watcher in watchers:
        watcher.join()
    timeout = DEFAULTS.http_header_timeout
    for name, (_, elapsed) in results.items():
        assert timeout - SLACK < elapsed < timeout + SLACK, (name, elapsed)
    assert results["half"][0].startswith(b"HTTP/1.1 408 ")
    assert results["no end"][0].startswith(b"HTTP/1.1 408 ")
    assert results["silent"][0] == b""


def test_headers_beyond_the_size_cap_are_refused_at_once(server: RunningServer) -> None:
    with _connect(server) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: ")
        connection.sendall(b"a" * (DEFAULTS.http_max_header_bytes + 1))
        received, elapsed = _until_closed(connection)
    assert received.startswith(b"HTTP/1.1 431 ")
    assert elapsed < SLACK


def test_a_body_sent_too_slowly_is_cut_off_at_the_body_timeout(server: RunningServer) -> None:
    with _connect(server) as connection:
        connection.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b'content-length: 100\r\n\r\n{"query"'
        )
        received, elapsed = _until_closed(connection)
    assert BODY_TIMEOUT - SLACK / 2 < elapsed < BODY_TIMEOUT + SLACK
    assert b"200 OK" not in received


def test_an_idle_keep_alive_connection_is_closed_at_the_keep_alive_timeout(
    server: RunningServer,
) -> None:
    with _connect(server) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(connection).startswith(b"HTTP/1.1 200 ")
        received, elapsed = _until_closed(connection)
    timeout = DEFAULTS.http_keep_alive_timeout
    assert received == b""
    assert timeout - SLACK < elapsed < timeout + SLACK


def test_a_request_sent_in_slow_pieces_within_the_limits_is_served(
    server: RunningServer,
) -> None:
    with _connect(server) as connection:
        for piece in (b"GET /heal", b"thz HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
            connection.sendall(piece)
            time.sleep(0.3)
        assert _response(connection).startswith(b"HTTP/1.1 200 ")
        # The same connection serves a second request: the header clock restarted.
        time.sleep(1)
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(connection).startswith(b"HTTP/1.1 200 ")


def test_a_client_that_leaves_mid_body_is_not_logged_as_an_error(server: RunningServer) -> None:
    for _ in range(3):
        connection = _connect(server)
        connection.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100000\r\n\r\n{"query":'
        )
        time.sleep(0.3)
        connection.close()
    time.sleep(1.0)
    log = server.output()
    assert "Exception in ASGI application" not in log
    assert "ClientDisconnect" not in log
    assert '"status": 500' not in log
