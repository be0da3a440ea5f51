"""The fulfilment worker loop: in the server process by default, or `carbon-gateway worker`."""

import logging

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

    def __init__(self, db: Database, secret: str) -> None:
        super().__init__()
        self.db = db
        self.secret = secret

    async def run_pass(self) -> None:
        result = await fulfil_pending(self.db, self.secret)
        if result.fulfilled or result.parked:
            log.info("fulfilment pass: %d fulfilled, %d parked", result.fulfilled, result.parked)
