"""Redis peers for tests of what a Redis that fails does to us: a real TCP server that
accepts connections and never answers (hung), or relays to the real Redis; and a port where
nothing listens (down)."""

import asyncio
import socket
from urllib.parse import urlsplit


class SilentPeer:
    """A TCP server on 127.0.0.1 that accepts connections and reads what it is sent, but never
    answers while `silent`; otherwise it relays to `upstream` (host, port)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.silent = True
        self.connections = 0
        self.received = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"

    async def __aenter__(self) -> "SilentPeer":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.silent:
                while chunk := await reader.read(65536):
                    self.received += len(chunk)
                return
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            await asyncio.gather(relay(reader, up_writer), relay(up_reader, writer))
        except asyncio.CancelledError:
            pass  # closed by __aexit__: asyncio's server would log a cancelled handler
        finally:
            writer.close()


async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    finally:
        writer.close()


def upstream_of(redis_url: str) -> tuple[str, int]:
    parts = urlsplit(redis_url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


def dead_redis_url() -> str:
    """A Redis URL whose port refuses connections (bound and closed just now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"
