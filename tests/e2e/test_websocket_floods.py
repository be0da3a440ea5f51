"""Floods of tiny WebSocket frames from a peer that never authenticates: each frame costs the
server's loop a few microseconds to parse whatever its size, and before a budget of frames
per connection (app/websocket_writes.py) one connection of one-byte continuation frames or
pings stalled every request of the process for seconds (3 M pings: 12.9 s). Now the peer is
closed with 1008 within its burst, and a cheap query stays fast meanwhile."""

import base64
import os
import select
import socket
import struct
import threading
import time

import httpx
import pytest

from tests.e2e.conftest import RunningServer

CHUNK_FRAMES = 2_000
MAX_FRAMES = 2_000_000  # what the attack would send if nothing stopped it


def client_frame(opcode: int, payload: bytes, *, fin: bool) -> bytes:
    """A masked frame (clients must mask) with a zero mask, so the payload reads as is."""
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def open_raw_socket(server: RunningServer) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    raw = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        (
            f"GET /graphql HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += raw.recv(4096)
    assert response.startswith(b"HTTP/1.1 101"), response
    return raw


def flood(raw: socket.socket, first: bytes, repeated: bytes) -> tuple[int, bytes]:
    """Send `first`, then `repeated` frames until the server closes; (frames sent, what the
    server sent back meanwhile)."""
    raw.sendall(first)
    sent, received = 0, b""
    chunk = repeated * CHUNK_FRAMES
    while sent < MAX_FRAMES:
        readable, _, _ = select.select([raw], [], [], 0)
        if readable:
            data = raw.recv(65536)
            if not data:
                break
            received += data
            if b"\x88" in received:  # a close frame began
                break
        try:
            raw.sendall(chunk)
        except OSError:  # reset: the server is gone
            break
        sent += CHUNK_FRAMES
    raw.settimeout(5)
    try:
        while True:
            data = raw.recv(65536)
            if not data:
                break
            received += data
    except OSError:
        pass
    return sent, received


def close_code(received: bytes) -> int | None:
    """The code of the first close frame (server frames are unmasked), skipping pongs."""
    position = 0
    while position + 2 <= len(received):
        opcode, length = received[position] & 0x0F, received[position + 1] & 0x7F
        if opcode == 0x8:
            (code,) = struct.unpack("!H", received[position + 2 : position + 4])
            return int(code)
        position += 2 + length
    return None


@pytest.mark.parametrize(
    ("first", "repeated"),
    [
        # A text message begun and never finished: one-byte continuation frames.
        (client_frame(0x1, b"{", fin=False), client_frame(0x0, b" ", fin=False)),
        (b"", client_frame(0x9, b"x", fin=True)),  # one-byte pings
    ],
    ids=["continuation-frames", "pings"],
)
def test_a_peer_flooding_tiny_frames_is_closed_and_requests_stay_fast(
    server: RunningServer, first: bytes, repeated: bytes
) -> None:
    key = server.demo_key("test", "standard")
    latencies: list[float] = []
    done = threading.Event()

    def time_queries() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            while not done.is_set():
                started = time.perf_counter()
                response = http.post(
                    "/graphql",
                    json={"query": "{ __typename }"},
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert response.status_code == 200
                latencies.append(time.perf_counter() - started)
                time.sleep(0.02)

    timer = threading.Thread(target=time_queries)
    timer.start()
    try:
        while not latencies and timer.is_alive():
            time.sleep(0.01)
        raw = open_raw_socket(server)
        try:
            sent, received = flood(raw, first, repeated)
        finally:
            raw.close()
        time.sleep(0.2)  # and just after
    finally:
        done.set()
        timer.join()
    assert close_code(received) == 1008
    # Closed before the whole attack went out (what was sent also counts the megabytes the
    # kernel's buffers took before the server read any of it).
    assert sent < MAX_FRAMES
    assert len(latencies) > 1
    assert max(latencies) < 1.0, max(latencies)
