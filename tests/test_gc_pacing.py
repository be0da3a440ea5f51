"""FullCollectionPacer: the interpreter starts no full collection while it runs; it runs them
itself when they are due and the process is idle, or once they have waited too long."""

import asyncio
import gc
import time

from app.gc_pacing import FullCollectionPacer, pacing_full_collections


def _make_due(passes: int) -> None:
    """Run `passes` generation-1 collections, as the interpreter's thresholds would."""
    for _ in range(passes):
        gc.collect(1)


async def test_thresholds_are_taken_and_given_back() -> None:
    before = gc.get_threshold()
    pacer = FullCollectionPacer(check_seconds=0.01)
    pacer.start()
    try:
        assert gc.get_threshold()[:2] == before[:2]
        assert gc.get_threshold()[2] > 1_000_000  # no automatic full collection
    finally:
        await pacer.stop()
    assert gc.get_threshold() == before


async def test_a_due_full_collection_runs_once_the_loop_is_idle() -> None:
    gc.collect()  # whatever earlier tests left due
    pacer = FullCollectionPacer(check_seconds=0.01, idle_cpu_share=0.5)
    pacer.start()
    try:
        await asyncio.sleep(0.05)
        assert pacer.collections == 0  # not due yet
        _make_due(pacer.full_after)
        async with asyncio.timeout(5):
            while pacer.collections == 0:  # noqa: ASYNC110 (a counter, polled as a test does)
                await asyncio.sleep(0.01)
        assert gc.get_count()[2] < pacer.full_after
    finally:
        await pacer.stop()


async def test_a_busy_loop_defers_it_until_the_longest_delay() -> None:
    gc.collect()
    pacer = FullCollectionPacer(check_seconds=0.01, max_delay_seconds=0.3)
    pacer.start()
    stop = asyncio.Event()

    async def hog() -> None:  # a core's worth of work, 5 ms a turn: never idle
        while not stop.is_set():
            until = time.perf_counter() + 0.005
            while time.perf_counter() < until:
                pass
            await asyncio.sleep(0)

    busy = asyncio.create_task(hog())
    try:
        _make_due(pacer.full_after)
        started = asyncio.get_running_loop().time()
        async with asyncio.timeout(5):
            while pacer.collections == 0:  # noqa: ASYNC110 (a counter, polled as a test does)
                await asyncio.sleep(0.01)
        assert asyncio.get_running_loop().time() - started >= 0.25
    finally:
        stop.set()
        await busy
        await pacer.stop()


async def test_one_pacer_per_process() -> None:
    before = gc.get_threshold()
    async with pacing_full_collections():
        paced = gc.get_threshold()
        async with pacing_full_collections():  # a second app in the same process
            assert gc.get_threshold() == paced
        assert gc.get_threshold() == paced
    assert gc.get_threshold() == before
