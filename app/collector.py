"""Full garbage collections when the process is quiet, not whenever the collector's counts
say so.

CPython starts a full collection once the objects promoted since the last one outnumber a
quarter of those that survived it. Under load — a fan-out burst, where anything alive for a few
milliseconds is promoted — that is every few seconds, and each pass walks every long-lived
object: with 1,000 live subscriptions, ~80,000 of them, 85-110 ms measured in
`bench/fanout.py`, during which every request and delivery of the process waits. The young
generations are cheap and stay as they are; the automatic full passes are turned off
(generation 2's threshold out of reach) while `QuietCollector.running()`, which runs them
itself:
- once the process has been quiet for QUIET_SECONDS (no HTTP request in flight, no event handed
  to subscribers) and MIN_INTERVAL_SECONDS have passed since the last one;
- at MAX_INTERVAL_SECONDS whatever the load, so that garbage held in reference cycles stays
  bounded (by at most that long's worth of it).

Reference counting frees everything else at once, as before: only cycles wait for a full pass,
and the app breaks the cycles of its sockets and subscriptions itself (tests/test_websocket_
cycles.py)."""

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable

log = logging.getLogger(__name__)

QUIET_SECONDS = 1.0
MIN_INTERVAL_SECONDS = 5.0
MAX_INTERVAL_SECONDS = 30.0
CHECK_SECONDS = 0.25
# Generation 2's threshold counts generation-1 collections; this many never happen between two
# of the collector's own passes (a few hundred per second at most).
OUT_OF_REACH = 1 << 30


class QuietCollector:
    """Tracks the process's activity (HTTP requests, event deliveries) and runs the full
    collections in its quiet moments."""

    def __init__(
        self,
        *,
        quiet_seconds: float = QUIET_SECONDS,
        min_interval_seconds: float = MIN_INTERVAL_SECONDS,
        max_interval_seconds: float = MAX_INTERVAL_SECONDS,
        check_seconds: float = CHECK_SECONDS,
        on_collected: Callable[[float], None] | None = None,
    ) -> None:
        self.quiet_seconds = quiet_seconds
        self.min_interval_seconds = min_interval_seconds
        self.max_interval_seconds = max_interval_seconds
        self.check_seconds = check_seconds
        self.on_collected = on_collected
        self.in_flight = 0
        self.collections = 0
        self._last_activity = 0.0
        self._last_collection = time.monotonic()
        self._activity_sources: list[Callable[[], float]] = []

    def request_started(self) -> None:
        self.in_flight += 1

    def request_ended(self) -> None:
        self.in_flight -= 1
        self._last_activity = time.monotonic()

    def watch(self, last_active: Callable[[], float]) -> None:
        """Another source of activity: the monotonic time it was last busy (the event feed)."""
        self._activity_sources.append(last_active)

    def quiet(self, now: float) -> bool:
        if self.in_flight:
            return False
        last = max([self._last_activity, *(source() for source in self._activity_sources)])
        return now - last >= self.quiet_seconds

    def due(self, now: float) -> bool:
        since = now - self._last_collection
        if since >= self.max_interval_seconds:
            return True
        return since >= self.min_interval_seconds and self.quiet(now)

    def collect(self) -> float:
        started = time.perf_counter()
        gc.collect()
        elapsed = time.perf_counter() - started
        self._last_collection = time.monotonic()
        self.collections += 1
        log.debug("full garbage collection: %.1f ms", elapsed * 1000)
        if self.on_collected is not None:
            self.on_collected(elapsed)
        return elapsed

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Automatic full collections off, and this collector's task running, meanwhile."""
        _automatic_full_collections(on=False)
        task = asyncio.create_task(self._run(), name="quiet garbage collections")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            _automatic_full_collections(on=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            if self.due(time.monotonic()):
                self.collect()


# Several apps may run in one process (tests): the first to start turns the automatic full
# collections off, the last to stop turns them back on, with the thresholds it found.
_running = 0
_thresholds = gc.get_threshold()


def _automatic_full_collections(*, on: bool) -> None:
    global _running, _thresholds
    if on:
        _running -= 1
        if _running == 0:
            gc.set_threshold(*_thresholds)
        return
    if _running == 0:
        _thresholds = gc.get_threshold()
        gc.set_threshold(_thresholds[0], _thresholds[1], OUT_OF_REACH)
    _running += 1
