"""The fulfilment worker loop: in the server process by default, or `carbon-gateway worker`."""

import logging
from collections.abc import Callable

from app.db import Database
from app.loops import PollingLoop
from app.offsets.fulfilment import fulfil_pending

log = logging.getLogger(__name__)


class FulfilmentWorker(PollingLoop):
    """Drains the queue, then sleeps until woken (an order was placed here) or the next poll
    (orders placed by other processes). Polling keeps latency under a second without a broker."""

    name = "fulfilment worker"
    poll_interval = 0.25
    error_backoff = 2.0

    def __init__(
        self, db: Database, secret: str, on_fulfilled: Callable[[], None] | None = None
    ) -> None:
        super().__init__()
        self.db = db
        self.secret = secret
        self.on_fulfilled = on_fulfilled

    async def run_pass(self) -> None:
        # After each commit, the relay publishes its events now rather than at its next poll
        # (up to 0.1 s later: a twentieth of a second on average on every FULFILLED delivery).
        result = await fulfil_pending(self.db, self.secret, on_fulfilled=self.on_fulfilled)
        if result.fulfilled or result.parked:
            log.info("fulfilment pass: %d fulfilled, %d parked", result.fulfilled, result.parked)
