"""Full garbage collections while the process is idle, not in the middle of a burst.

CPython's collector runs a full (generation-2) pass whenever enough objects have survived the
younger generations, wherever the program is: a pass walks every tracked object that is not
frozen (`gc.freeze()` at startup, app/main.py), and it holds the event loop — every request
and delivery of the process — for as long as it takes. During a fan-out burst
(bench/fanout.py) such passes took 35 to 170 ms with 1,000 subscriptions, and 300 to 850 ms
right after 5,000 sockets had come and gone; one landing inside the burst was most of the
slowest ordinary query's time.

`FullCollectionPacer` takes the full passes away from the interpreter's thresholds
(generation 2's threshold is set out of reach; generations 0 and 1 keep theirs) and runs them
itself when they are due by the interpreter's own count (`gc.get_count()[2]`: generation-1
passes since the last full one, at least the default threshold) and the process is idle: it
looks every `CHECK_SECONDS`, and idle means that over the last `IDLE_LOOKS` looks the
process (all its threads: SQLite's work runs on the driver's) used at most `IDLE_CPU_SHARE`
of a core. The loop's own lag is no such sign: on SQLite a burst's turns are short while its
requests wait on the driver's thread. A process that stays busy gets its full pass anyway
once it has been due for `MAX_DELAY_SECONDS`: cyclic garbage still goes within a bounded
time, and memory stays bounded. Unreachable objects wait for the next idle moment instead of
the next threshold; nothing else changes (young collections, finalizers, explicit
`gc.collect()` calls).

One pacer per process (the first app's lifespan starts it); stopping it restores the
thresholds it found.
"""

import asyncio
import collections
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator

log = logging.getLogger(__name__)
CHECK_SECONDS = 0.1
IDLE_CPU_SHARE = 0.1
IDLE_LOOKS = 2
MAX_DELAY_SECONDS = 30.0
# Generation-1 passes that make a full one due: CPython's default threshold for generation 2.
FULL_AFTER = 10
# Out of reach: the interpreter itself never starts a full pass.
_UNREACHABLE = 1 << 30


class FullCollectionPacer:
    def __init__(
        self,
        *,
        check_seconds: float = CHECK_SECONDS,
        idle_cpu_share: float = IDLE_CPU_SHARE,
        idle_looks: int = IDLE_LOOKS,
        max_delay_seconds: float = MAX_DELAY_SECONDS,
        full_after: int = FULL_AFTER,
    ) -> None:
        self.check_seconds = check_seconds
        self.idle_cpu_share = idle_cpu_share
        self.idle_looks = idle_looks
        self.max_delay_seconds = max_delay_seconds
        self.full_after = full_after
        self.collections = 0  # full passes it ran, for tests and operators
        self._thresholds: tuple[int, int, int] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._thresholds = gc.get_threshold()
        young, middle, _full = self._thresholds
        gc.set_threshold(young, middle, _UNREACHABLE)
        self._task = asyncio.create_task(self._run(), name="full collection pacer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None

    async def _run(self) -> None:
        due_since: float | None = None
        looks: collections.deque[tuple[float, float]] = collections.deque(
            maxlen=self.idle_looks + 1
        )
        while True:
            now = time.monotonic()
            looks.append((now, time.process_time()))
            if gc.get_count()[2] < self.full_after:
                due_since = None
            else:
                if due_since is None:
                    due_since = now
                if self._idle(looks) or now - due_since >= self.max_delay_seconds:
                    self.collect()
                    due_since = None
                    looks.clear()
            await asyncio.sleep(self.check_seconds)

    def _idle(self, looks: "collections.deque[tuple[float, float]]") -> bool:
        """Whether the process used at most its idle share of a core since the oldest look."""
        if len(looks) <= self.idle_looks:
            return False
        (since, cpu_since), (now, cpu_now) = looks[0], looks[-1]
        return cpu_now - cpu_since <= self.idle_cpu_share * (now - since)

    def collect(self) -> None:
        started = time.perf_counter()
        found = gc.collect()
        self.collections += 1
        log.debug(
            "full collection: %d unreachable objects, %.0f ms",
            found,
            (time.perf_counter() - started) * 1000,
        )


_pacer: FullCollectionPacer | None = None


@contextlib.asynccontextmanager
async def pacing_full_collections() -> AsyncIterator[None]:
    """Pace full collections for the block (the app's life), unless a pacer already runs."""
    global _pacer
    if _pacer is not None:
        yield
        return
    _pacer = pacer = FullCollectionPacer()
    pacer.start()
    try:
        yield
    finally:
        _pacer = None
        await pacer.stop()
