"""The WebSocket transport's write coalescing (app/websocket_writes.py): a loop turn's writes
leave as one, in order, and closing sends what is pending first; direct text frames are
framed as websockets frames them."""

import asyncio

from websockets.frames import Frame, Opcode

from app.websocket_writes import CoalescingTransport, text_frame_header


class RecordingTransport(asyncio.Transport):
    """Stands in for the socket's transport: records each write it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_frames_written_in_one_loop_turn_leave_in_one_write_in_order() -> None:
    transport = RecordingTransport()
    coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
    for frame in (b"one", b"two", b"three"):
        coalescing.write(frame)
    assert transport.writes == []
    assert coalescing.get_write_buffer_size() == len(b"onetwothree")
    await asyncio.sleep(0)
    assert transport.writes == [b"onetwothree"]
    coalescing.write(b"four")
    await asyncio.sleep(0)
    assert transport.writes == [b"onetwothree", b"four"]


async def test_closing_sends_pending_frames_first_and_later_writes_go_nowhere() -> None:
    transport = RecordingTransport()
    coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
    coalescing.write(b"last event")
    coalescing.write(b"close frame")
    coalescing.close()
    assert transport.writes == [b"last eventclose frame"]
    assert transport.closed
    coalescing.write(b"too late")
    await asyncio.sleep(0)
    assert transport.writes == [b"last eventclose frame"]


async def test_over_a_real_socket_the_bytes_arrive_whole_and_in_order() -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.put_nowait(await reader.read())
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        transport, _ = await asyncio.get_running_loop().create_connection(
            asyncio.Protocol, "127.0.0.1", port
        )
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
        frames = [f"frame {index};".encode() for index in range(100)]
        for frame in frames:
            coalescing.write(frame)
        coalescing.close()
        assert await asyncio.wait_for(received.get(), 5) == b"".join(frames)


def test_direct_text_frame_headers_are_those_websockets_would_write() -> None:
    for length in (0, 125, 126, 65_535, 65_536, 200_000):
        data = b"x" * length
        expected = Frame(Opcode.TEXT, data).serialize(mask=False)
        assert text_frame_header(length) + data == expected, length
