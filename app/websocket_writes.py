"""uvicorn's WebSocket protocol with the frames written in one turn of the event loop sent in
one write.

graphql-transport-ws allows one JSON message per frame, but nothing stops several frames from
sharing a TCP write. uvicorn (0.54, websockets-sansio) calls `transport.write` once per frame,
which is one `send()` system call per delivered event and subscriber: a quarter of the server's
time in a fan-out burst (bench/fanout.py, py-spy). Here the transport the protocol writes to
collects the bytes of one loop turn and hands them to the real transport once, at the start of
the next turn; the event feed hands out an event to a socket's subscriptions one after another
(app/events/feed.py), so a socket with 20 subscriptions gets its 20 frames in one system call.

The bytes and their order are unchanged; they leave at most one loop turn later. Closing flushes
first, so a close frame still follows everything sent before it. Backpressure is the real
transport's: it pauses the protocol (`pause_writing`) as before, and what one turn collects is
bounded by what the application sent in that turn. `carbon-gateway serve` passes this class to
uvicorn by its import path; it replaces uvicorn's `transport` attribute only, in
`connection_made`. tests/test_websocket_writes.py checks the coalescing; every WebSocket test
against a real server (tests/e2e) runs through it.
"""

import asyncio
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

PROTOCOL_PATH = "app.websocket_writes:CoalescingWebSocketProtocol"


class CoalescingTransport:
    """Writes of one loop turn joined into one; everything else is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingWebSocketProtocol(WebSocketsSansIOProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport = cast(
            asyncio.Transport, CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
        )
