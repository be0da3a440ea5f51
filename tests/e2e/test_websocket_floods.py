"""Floods from a WebSocket peer that never authenticates: each frame costs the server's loop a
few microseconds to parse whatever its size, and more per KiB it inflates to. Before a budget
per connection (app/websocket_writes.py) one connection of one-byte continuation frames or
pings stalled every request of the process for seconds (3 M pings: 12.9 s), and so did small
compressed frames inflating to 4 MiB each (1.2 MB sent: 2.7 s). Now the peer is closed within
its budget — 1008, or 1009 for a message over the size allowed before `connection_init` is
acknowledged — and a cheap query stays fast meanwhile. A client that is acknowledged may still
send a 4 MiB message in small fragments."""

import asyncio
import base64
import contextlib
import json
import os
import select
import socket
import struct
import threading
import time
import zlib

import httpx
import pytest

from app.websocket_writes import BURST_UNITS
from tests.e2e.conftest import RunningServer
from tests.e2e.test_subscriptions import open_transport_ws, receive

CHUNK_FRAMES = 200
MAX_FRAMES = 2_000_000  # what the attack would send if nothing stopped it


def client_frame(opcode: int, payload: bytes, *, fin: bool) -> bytes:
    """A masked frame (clients must mask) with a zero mask, so the payload reads as is."""
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def compressed_text_frame(payload: bytes) -> bytes:
    """A masked text frame compressed per permessage-deflate (RFC 7692: RSV1, raw deflate
    without its final empty block)."""
    compressor = zlib.compressobj(wbits=-15)
    data = (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    header = bytes([0x80 | 0x40 | 0x1])
    if len(data) < 126:
        header += bytes([0x80 | len(data)])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(data))
    return header + b"\0\0\0\0" + data


def open_raw_socket(server: RunningServer, *, deflate: bool = False) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    raw = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        (
            f"GET /graphql HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: graphql-transport-ws\r\n"
            + ("Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else "")
            + "\r\n"
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


def until_close(raw: socket.socket) -> bytes:
    """What the server sends until its close frame, its end, or 5 s of silence."""
    received = b""
    raw.settimeout(5)
    with contextlib.suppress(OSError):  # a timeout, or a reset
        while close_code(received) is None and (data := raw.recv(65536)):
            received += data
    return received


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


# A 4 MiB graphql-transport-ws ping message of spaces, compressed to a few KiB.
BOMB = compressed_text_frame(b'{"type": "ping"' + b" " * (4 * 1024 * 1024 - 17) + b"}")


@pytest.mark.parametrize(
    ("first", "repeated", "deflate", "code"),
    [
        # A text message begun and never finished: one-byte continuation frames.
        (client_frame(0x1, b"{", fin=False), client_frame(0x0, b" ", fin=False), False, 1008),
        (b"", client_frame(0x9, b"x", fin=True), False, 1008),  # one-byte pings
        (b"", BOMB, True, 1009),  # over the size allowed before connection_init is acknowledged
    ],
    ids=["continuation-frames", "pings", "deflate-bombs"],
)
def test_a_peer_flooding_frames_is_closed_and_requests_stay_fast(
    server: RunningServer, first: bytes, repeated: bytes, deflate: bool, code: int
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
        raw = open_raw_socket(server, deflate=deflate)
        try:
            sent, received = flood(raw, first, repeated)
        finally:
            raw.close()
        time.sleep(0.2)  # and just after
    finally:
        done.set()
        timer.join()
    assert close_code(received) == code
    # Closed before the whole attack went out (what was sent also counts the megabytes the
    # kernel's buffers took before the server read any of it).
    assert sent < MAX_FRAMES
    assert len(latencies) > 1
    assert max(latencies) < 1.0, max(latencies)


async def test_an_acknowledged_client_may_send_a_4_mib_message_in_small_fragments(
    server: RunningServer,
) -> None:
    """Within the budget of an acknowledged peer: 7,700 fragments of 512 bytes."""
    socket_ = await open_transport_ws(server, server.demo_key("test", "standard"))
    try:
        message = json.dumps(
            {
                "id": "big",
                "type": "subscribe",
                "payload": {
                    "query": "query($x: ID!) { __typename node(id: $x) { id } }",
                    "variables": {"x": "a" * (4 * 1024 * 1024 - 200)},
                },
            }
        )
        await socket_.send(message[start : start + 512] for start in range(0, len(message), 512))
        answer = await asyncio.wait_for(receive(socket_), 30)
        # Received whole and executed: the 4 MiB id is no order's.
        assert answer["type"] == "next", answer
        assert answer["payload"]["data"]["__typename"] == "Query"
    finally:
        await socket_.close()


def test_the_sockets_of_one_account_share_their_budget(server: RunningServer) -> None:
    """Each alone within the budget, together over it: the one that overdraws it is closed, so
    an account cannot multiply what it may make the process parse by opening sockets."""
    key = server.demo_key("test", "standard")
    init = json.dumps({"type": "connection_init", "payload": {"apiKey": key}}).encode()
    each = (BURST_UNITS * 3) // 4
    first, second = open_raw_socket(server), open_raw_socket(server)
    try:
        for raw in (first, second):
            raw.sendall(client_frame(0x1, init, fin=True))
            assert b"connection_ack" in raw.recv(4096)
        begun = client_frame(0x1, b"{", fin=False)
        pad = client_frame(0x0, b" ", fin=False)
        first.sendall(begun + pad * each)
        time.sleep(0.2)  # read by the server, before the second's
        second.sendall(begun + pad * each)
        received = until_close(second)
    finally:
        first.close()
        second.close()
    assert close_code(received) == 1008


def test_closing_and_reopening_a_socket_does_not_refill_the_budget(server: RunningServer) -> None:
    """The budget outlives the account's last socket for as long as it takes to refill: a
    reconnect loop, each socket within the budget alone, sustained 37 times the refill rate."""
    key = server.demo_key("test", "standard")
    init = json.dumps({"type": "connection_init", "payload": {"apiKey": key}}).encode()
    begun = client_frame(0x1, b"{", fin=False)
    pad = client_frame(0x0, b" ", fin=False)
    each = (BURST_UNITS * 3) // 4
    received = b""
    for attempt in range(2):
        raw = open_raw_socket(server)
        try:
            raw.sendall(client_frame(0x1, init, fin=True))
            assert b"connection_ack" in raw.recv(4096)
            raw.sendall(begun + pad * each)
            if attempt == 0:
                time.sleep(0.2)  # read by the server, then closed cleanly, within its budget
                raw.sendall(client_frame(0x8, struct.pack("!H", 1000), fin=True))
                continue
            received = until_close(raw)
        finally:
            raw.close()
        time.sleep(0.3)  # the first socket's objects are freed before the second opens
    assert close_code(received) == 1008
