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

It also offers the application synchronous text-frame writes, `scope["extensions"]
[SEND_TEXTS_NOW]` (the protocol itself, with `send_texts_now`), for live-event fan-out
(app/graphql/events.py): the ASGI `send` costs a coroutine and its checks per frame, websockets'
frame serializer a few microseconds more. The feed hands a socket all its subscriptions' frames
of one event at once, and they go out as one buffer — one list join and one transport write per
socket and event, not per subscription. The write refuses instead of waiting when the socket
already holds `SOCKET_BUFFER_LIMIT` unsent bytes, so the caller can fall back to a path that waits
(the feed's catch-up from the outbox). Its frames are never compressed, even when the client
negotiated permessage-deflate: RFC 7692 lets any message go uncompressed (RSV1 clear), and
compressing one event per socket would cost more than the rest of its delivery. Each frame is
whole and unfragmented, so the buffer can sit between frames uvicorn writes.
"""

import asyncio
import time
from collections.abc import Sequence
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State

PROTOCOL_PATH = "app.websocket_writes:CoalescingWebSocketProtocol"
SEND_TEXTS_NOW = "carbon_gateway.websocket.send_texts_now"
# Unsent bytes a socket may hold before direct writes are refused: about 4,000 events, a burst
# of 200 events for 20 subscriptions.
SOCKET_BUFFER_LIMIT = 1 << 20
# What a peer may send, in units of one frame or one KiB of (inflated) payload, whichever is
# more: parsing costs the event loop a few microseconds per frame and more per KiB inflated
# (permessage-deflate), so one connection of one-byte continuation frames, pings, or small
# frames that inflate to 4 MiB each used to stall every request of the process for seconds.
# Until its `connection_init` is acknowledged a peer has PRE_AUTH_UNITS in all (a client sends
# one small message then; the legacy protocol's may queue its first operations behind it) and
# messages of at most PRE_AUTH_MAX_MESSAGE_BYTES (inflation bounded too). Once acknowledged, a
# bucket of BURST_UNITS refilled at UNITS_PER_SECOND, shared by all the sockets of its account
# in the process (a 4 MiB message sent as 512-byte fragments is 12,288 units). A ping or pong
# costs PING_UNITS (each is answered; browsers never send them, graphql-ws pings with
# messages). Received bytes are parsed RECEIVE_SLICE at a time, so a peer past its budget is
# stopped within a slice, not a 256 KiB read.
PRE_AUTH_UNITS = 256
PRE_AUTH_MAX_MESSAGE_BYTES = 256 * 1024
BURST_UNITS = 16_384
UNITS_PER_SECOND = 4_096
PING_UNITS = 10
RECEIVE_SLICE = 4_096
AUTHENTICATED = "carbon_gateway.websocket.authenticated"
CLOSE_FRAME_FLOOD = 1008  # policy violation
# A peer that has not answered the server's close (or whose close frame cannot leave, queued
# behind bytes it does not read) this long after it was sent or due is dropped.
UNREAD_CLOSE_GRACE_SECONDS = 5.0


class FrameBudget:
    """Units (see BURST_UNITS) a peer may send: `capacity` at once, refilled at `per_second`.
    Once acknowledged, the sockets of one account in a process share one (the application
    hands it over), so a tenant with many sockets cannot stall the others' requests."""

    def __init__(self, capacity: float, per_second: float) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.units = capacity
        self._at = time.monotonic()

    def charge(self, units: int) -> bool:
        """Take `units`; False once the budget is overdrawn."""
        now = time.monotonic()
        if self.per_second:
            self.units = min(self.capacity, self.units + (now - self._at) * self.per_second)
        self._at = now
        self.units -= units
        return self.units >= 0


class CoalescingTransport:
    """Writes of one loop turn joined into one; everything else is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)
        self._pending_bytes += len(data)

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        self._pending_bytes = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._pending_bytes = 0
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._pending_bytes

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingWebSocketProtocol(WebSocketsSansIOProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport = cast(
            asyncio.Transport, CoalescingTransport(cast(asyncio.Transport, transport), self.loop)
        )
        self._budget = FrameBudget(PRE_AUTH_UNITS, 0)  # no refill until acknowledged
        self._flooded = False
        self._max_message_size = self.conn.max_message_size
        self.conn.max_message_size = min(
            self._max_message_size or PRE_AUTH_MAX_MESSAGE_BYTES, PRE_AUTH_MAX_MESSAGE_BYTES
        )

    def authenticated(self, budget: FrameBudget) -> None:
        """The application acknowledged the peer's `connection_init` (a valid key): from now on
        `budget` (its account's, shared by its sockets) and the full message size."""
        self._budget = budget
        self.conn.max_message_size = self._max_message_size

    def data_received(self, data: bytes) -> None:
        if self._flooded:
            return  # it is being closed: what it still sends is not parsed
        if len(data) <= RECEIVE_SLICE:
            super().data_received(data)
            return
        view = memoryview(data)
        for start in range(0, len(data), RECEIVE_SLICE):
            super().data_received(bytes(view[start : start + RECEIVE_SLICE]))
            if self._flooded or self.transport.is_closing():
                return

    def handle_events(self) -> None:
        """uvicorn's, with each frame charged to the peer's budget (see BURST_UNITS)."""
        events = self.conn.events_received()
        units = 0
        for event in events:
            if isinstance(event, Frame):
                if event.opcode in _CONTROL_CHATTER:
                    units += PING_UNITS
                else:
                    units += max(1, len(event.data) >> 10)
        if units and not self._budget.charge(units):
            self._close_flooded()
            return
        self.conn.events = events  # uvicorn's loop takes them from the connection
        super().handle_events()

    def _close_flooded(self) -> None:
        """Close with 1008 what sends faster than any client does. Its reads stop (so the close
        frame is not lost to a reset from unread bytes, and the peer's kernel holds what it
        still sends); it is dropped after the grace, or at once if its handshake was not
        answered yet."""
        self._flooded = True
        self.logger.warning("closing a WebSocket peer that sends too many frames")
        if self.conn.state is not State.OPEN:
            self.abort()
            return
        if not self.close_sent:
            self.close_sent = True
            self.conn.send_close(CLOSE_FRAME_FLOOD, "too many frames")
            self.transport.write(b"".join(self.conn.data_to_send()))
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        self.loop.call_later(UNREAD_CLOSE_GRACE_SECONDS, self._abort_unless_gone)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the handshake was refused
        if scope is not None:
            scope["extensions"][SEND_TEXTS_NOW] = self
            scope["extensions"][AUTHENTICATED] = self.authenticated

    def abort(self) -> None:
        """Drop the connection now, unsent bytes and all: for a peer that reads nothing, whose
        close frame would wait forever behind them (a transport closes once it has drained)."""
        self.transport.abort()

    def keepalive_timeout(self) -> None:
        # uvicorn answers an unanswered ping with a 1011 close, which leaves only once the
        # peer has read what is queued before it; a peer that reads nothing is dropped.
        closing = self.close_sent or self.transport.is_closing()  # uvicorn does nothing then
        super().keepalive_timeout()
        if not closing:
            self.loop.call_later(UNREAD_CLOSE_GRACE_SECONDS, self._abort_unless_gone)

    async def send(self, message: Any) -> None:
        closing = message["type"] == "websocket.close" and not self.close_sent
        await super().send(message)
        if closing and self.close_sent:
            # uvicorn waits `close_timeout` (10 s) for the peer's answer, then closes the
            # transport, which waits for the unread bytes before the close frame to drain: a
            # peer that reads nothing would hold the connection for ever. One that has not
            # answered within the grace is dropped.
            self.loop.call_later(UNREAD_CLOSE_GRACE_SECONDS, self._abort_unless_gone)

    def _abort_unless_gone(self) -> None:
        if not self.disconnected:
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # A frame websockets refused (e.g. a close code no peer may send) is kept with its
        # traceback, whose frames hold the parser: a cycle until a full collection.
        self.conn.parser_exc = None

    async def run_asgi(self) -> None:
        try:
            await super().run_asgi()
        finally:
            # The scope's reference to this protocol is a cycle (protocol -> scope -> protocol)
            # holding the connection's objects until a full garbage collection; the
            # application is done with the scope now.
            scope = getattr(self, "scope", None)
            if scope is not None:
                scope["extensions"].pop(SEND_TEXTS_NOW, None)
                scope["extensions"].pop(AUTHENTICATED, None)

    def send_texts_now(self, messages: Sequence[bytes]) -> bool:
        """Write each of `messages` (UTF-8) as a text frame now, all in one buffer; False,
        writing nothing, when the socket holds SOCKET_BUFFER_LIMIT unsent bytes. A socket that
        is closing or gone takes nothing and answers True: there is nothing to wait for."""
        transport = self.transport
        if self.close_sent or self.conn.state is not State.OPEN or transport.is_closing():
            return True
        if transport.get_write_buffer_size() > SOCKET_BUFFER_LIMIT:
            return False
        parts: list[bytes] = []
        for message in messages:
            parts.append(text_frame_header(len(message)))
            parts.append(message)
        transport.write(b"".join(parts))
        return True


_CONTROL_CHATTER = (Opcode.PING, Opcode.PONG)


def text_frame_header(length: int) -> bytes:
    """The header of a final, unmasked, uncompressed text frame (RFC 6455 5.2) of `length`
    bytes, as a server sends it."""
    if length < 126:
        return bytes((0x81, length))
    if length < 1 << 16:
        return b"\x81\x7e" + length.to_bytes(2, "big")
    return b"\x81\x7f" + length.to_bytes(8, "big")
