"""How long and how much a client may take to send a request: uvicorn's httptools protocol
with a header deadline, a header size cap and a body deadline.

uvicorn (0.54) has a keep-alive timeout, armed only once a response is complete, and no
header-read timeout: a client that connects and sends half a request line is held forever
(slowloris), and httptools puts no bound on header size. So:

- the request's headers must be complete within `CG_HTTP_HEADER_TIMEOUT` seconds of the
  connection opening or of the previous response ending (else 408 and close — just close if
  nothing of the request arrived);
- they must fit in `CG_HTTP_MAX_HEADER_BYTES` (else 431 and close);
- the body must be complete within `CG_HTTP_BODY_TIMEOUT` seconds of the headers (else the
  connection is closed and the application sees a disconnect).

uvicorn's `h11_max_incomplete_event_size` would cap headers only for the h11 parser, which
is not used: httptools comes with uvicorn[standard]. `carbon-gateway serve` passes this class
to uvicorn by its import path, so every worker process builds it and reads the limits from its
own environment once. It hooks into uvicorn's protocol methods (`_start_asgi_task`,
`on_response_complete`, the pipeline); tests/e2e/test_http_limits.py fails if they change.
"""

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import Settings

PROTOCOL_PATH = "app.http_limits:LimitedHttpProtocol"


@functools.cache
def _settings() -> Settings:
    return Settings()


def _refusal(status: int, reason: str) -> bytes:
    return f"HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()


class LimitedHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = _settings()
        self.header_timeout = settings.http_header_timeout
        self.body_timeout = settings.http_body_timeout
        self.max_header_bytes = settings.http_max_header_bytes
        self._header_deadline: asyncio.TimerHandle | None = None
        self._body_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0  # bytes received since the headers' clock started
        self._reading_headers = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        self._cancel_body_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: a chunk that completes the headers carries body bytes too.
        if self._reading_headers and self._header_bytes > self.max_header_bytes:
            self._refuse(431, "Request Header Fields Too Large")

    def on_headers_complete(self) -> None:
        self._cancel_header_deadline()
        super().on_headers_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        super()._start_asgi_task(cycle, app)
        # Now (and not while a pipelined request waits its turn) its body is being read.
        if cycle.more_body and self._body_deadline is None:
            self._body_deadline = self.loop.call_later(self.body_timeout, self._body_too_slow)

    def on_message_complete(self) -> None:
        self._cancel_body_deadline()
        answered = self.cycle is not None and self.cycle.response_complete
        super().on_message_complete()
        if answered and not self.pipeline and not self.transport.is_closing():
            self._await_headers()  # the rest of an already answered body is in

    def on_response_complete(self) -> None:
        waiting = bool(self.pipeline)  # a pipelined request whose headers are already in
        # Answered before its body was read (e.g. 413): the rest of the body still comes,
        # under the body deadline, before the next request's headers may start.
        body_pending = self.cycle is not None and self.cycle.more_body
        if not body_pending:
            self._cancel_body_deadline()
        super().on_response_complete()
        if not waiting and not body_pending and not self.transport.is_closing():
            self._await_headers()

    def _await_headers(self) -> None:
        self._cancel_header_deadline()
        self._reading_headers = True
        self._header_bytes = 0
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        self._reading_headers = False
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _cancel_body_deadline(self) -> None:
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self._header_bytes:
            self._refuse(408, "Request Timeout")
        elif not self.transport.is_closing():
            self.transport.close()  # an idle connection: nothing to answer

    def _body_too_slow(self) -> None:
        self._body_deadline = None
        if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            self.logger.info("request body not received within %s s: closing", self.body_timeout)
            self.transport.close()

    def _refuse(self, status: int, reason: str) -> None:
        self._cancel_header_deadline()
        if not self.transport.is_closing():
            self.transport.write(_refusal(status, reason))
            self.transport.close()
