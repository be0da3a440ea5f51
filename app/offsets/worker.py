"""The fulfilment worker loop: in the server process by default, or `carbon-gateway worker`."""

import asyncio
import contextlib
import logging

from app.db import Database
from app.offsets.fulfilment import fulfil_pending

log = logging.getLogger(__name__)
POLL_INTERVAL_SECONDS = 0.25
ERROR_BACKOFF_SECONDS = 2.0


class FulfilmentWorker:
    """Drains the queue, then sleeps until woken (an order was placed here) or the next poll
    (orders placed by other processes). Polling keeps latency under a second without a broker."""

    def __init__(self, db: Database, secret: str, poll_interval: float = POLL_INTERVAL_SECONDS):
        self.db = db
        self.secret = secret
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        log.info("fulfilment worker started")
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                result = await fulfil_pending(self.db, self.secret)
                if result.fulfilled or result.parked:
                    log.info(
                        "fulfilment pass: %d fulfilled, %d parked", result.fulfilled, result.parked
                    )
            except Exception:
                # One bad pass must not kill the worker; the order stays PLACED for next time.
                log.exception("fulfilment pass failed")
                await asyncio.sleep(ERROR_BACKOFF_SECONDS)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
        log.info("fulfilment worker stopped")
