"""A background loop: run a pass, then sleep until woken or the poll interval, until stopped."""

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)


def settle(future: "asyncio.Future[Any]", result: Any, error: BaseException | None) -> None:
    """Answer `future` with `error`, or else `result`, unless it was answered (or cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class PollingLoop:
    """Subclasses implement `run_pass`. A failing pass is logged and retried after a pause, so
    one bad row or a database blip never kills the loop."""

    name = "loop"
    poll_interval = 0.25
    error_backoff = 1.0

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run_pass(self) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        log.info("%s started", self.name)
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                await self.run_pass()
            except Exception:
                log.exception("%s pass failed", self.name)
                await asyncio.sleep(self.error_backoff)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
        log.info("%s stopped", self.name)
