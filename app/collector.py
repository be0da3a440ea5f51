"""Full garbage collections when the process is quiet, not whenever the collector's counts
say so.

CPython starts a full collection once the objects promoted since the last one outnumber a
quarter of those that survived it. Under load — a fan-out burst, where anything alive for a few
milliseconds is promoted — that is every few seconds, and each pass walks every long-lived
object: with 1,000 live subscriptions, ~80,000 of them, 85-110 ms measured in
`bench/fanout.py`, during which every request and delivery of the process waits, and a pass
in such a burst finds almost no garbage. The young generations are cheap and stay as they are;
the automatic full passes are turned off (generation 2's threshold out of reach) while
`QuietCollector.running()`, which runs them itself:
- once the process has been quiet for QUIET_SECONDS (no HTTP request in flight, no WebSocket
  message received, no event handed to subscribers) and MIN_INTERVAL_SECONDS have passed since
  the last one;
- once PRESSURE_COLLECTIONS generation-1 collections have run since the last one, whatever the
  load: allocation pressure (a fan-out burst makes 2-4 of them a second, a stream of hostile
  documents ~40) bounds what a pass may have to walk;
- at MAX_INTERVAL_SECONDS whatever the load.
A process that makes garbage in reference cycles fast (graphql-core's tokens are linked both
ways, so each new document parsed is a cycle; one aborted at the token limit leaves ~9,000
objects) would otherwise pile it up between passes and pay for it in one long pause: when a
pass finds that at least GARBAGE_SHARE of what it walked was garbage, the next ones come
after GARBAGE_PRESSURE_COLLECTIONS generation-1 collections instead (about CPython's own
cadence then), until a pass finds less.

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
PRESSURE_COLLECTIONS = 50
GARBAGE_SHARE = 0.25
GARBAGE_PRESSURE_COLLECTIONS = 10
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
        pressure_collections: int = PRESSURE_COLLECTIONS,
        garbage_pressure_collections: int = GARBAGE_PRESSURE_COLLECTIONS,
        check_seconds: float = CHECK_SECONDS,
        on_collected: Callable[[float], None] | None = None,
    ) -> None:
        self.quiet_seconds = quiet_seconds
        self.min_interval_seconds = min_interval_seconds
        self.max_interval_seconds = max_interval_seconds
        self.pressure_collections = pressure_collections
        self.garbage_pressure_collections = garbage_pressure_collections
        self.check_seconds = check_seconds
        self.on_collected = on_collected
        self.in_flight = 0
        self.collections = 0
        self.garbage_heavy = False  # the last pass found GARBAGE_SHARE or more garbage
        self._last_activity = 0.0
        self._last_collection = time.monotonic()
        self._activity_sources: list[Callable[[], float]] = []

    def request_started(self) -> None:
        self.in_flight += 1

    def request_ended(self) -> None:
        self.in_flight -= 1
        self._last_activity = time.monotonic()

    def touch(self) -> None:
        """Something happened just now (a WebSocket message arrived)."""
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
        pressure = (
            self.garbage_pressure_collections if self.garbage_heavy else self.pressure_collections
        )
        if gc.get_count()[2] >= pressure:  # generation-1 collections since the last full one
            return True
        return since >= self.min_interval_seconds and self.quiet(now)

    def collect(self) -> float:
        self._last_collection = time.monotonic()  # due again MAX_INTERVAL after it started
        started = time.perf_counter()
        found = gc.collect()
        elapsed = time.perf_counter() - started
        walked = found + len(gc.get_objects())
        self.garbage_heavy = found >= GARBAGE_SHARE * walked
        self.collections += 1
        log.debug(
            "full garbage collection: %.1f ms, %d of %d objects garbage",
            elapsed * 1000,
            found,
            walked,
        )
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
            try:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            finally:
                _automatic_full_collections(on=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                if self.due(time.monotonic()):
                    self.collect()
            except Exception:
                # The loop must go on: without it, nothing would run the full collections.
                log.exception("scheduled garbage collection failed")


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
