"""Full garbage collections run in the process's quiet moments (app/collector.py): never
automatically, at once when quiet after the minimum interval, and at the maximum interval
whatever the load. Real collections, counted through `gc.callbacks`."""

import asyncio
import gc
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.collector import OUT_OF_REACH, QuietCollector
from app.observability import Metrics, RequestContextMiddleware


@pytest.fixture
def full_collections() -> Iterator[list[float]]:
    """The times of the full collections that start while the test runs."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            started.append(time.monotonic())

    gc.callbacks.append(callback)
    try:
        yield started
    finally:
        gc.callbacks.remove(callback)


def fast(**overrides: Any) -> QuietCollector:
    """A collector on a short clock. Allocation pressure is out of the way unless asked for:
    generation-1 collections since the last full one count the whole test process's."""
    intervals: dict[str, Any] = {
        "quiet_seconds": 0.05,
        "min_interval_seconds": 0.1,
        "max_interval_seconds": 0.6,
        "check_seconds": 0.01,
        "pressure_collections": OUT_OF_REACH,
        "garbage_pressure_collections": OUT_OF_REACH,
    }
    return QuietCollector(**(intervals | overrides))


async def test_no_automatic_full_collection_while_running(full_collections: list[float]) -> None:
    """Long-lived objects promoted by the hundred thousand: CPython would have run several full
    passes; with the collector's own check far off, none runs."""
    found = gc.get_threshold()
    collector = QuietCollector(check_seconds=3600)
    async with collector.running():
        assert gc.get_threshold() == (found[0], found[1], OUT_OF_REACH)
        kept: list[list[object]] = []
        for _ in range(300_000):
            kept.append([])  # tracked, and alive: each young collection promotes them
        gc.collect(1)
        assert full_collections == []
    assert gc.get_threshold() == found
    del kept


async def test_thresholds_come_back_when_the_last_of_several_collectors_stops() -> None:
    found = gc.get_threshold()
    first, second = QuietCollector(check_seconds=3600), QuietCollector(check_seconds=3600)
    async with first.running():
        async with second.running():
            assert gc.get_threshold()[2] == OUT_OF_REACH
        assert gc.get_threshold()[2] == OUT_OF_REACH  # the first still runs
    assert gc.get_threshold() == found


async def test_a_quiet_process_is_collected_once_the_minimum_interval_has_passed(
    full_collections: list[float],
) -> None:
    collector = fast()
    started = time.monotonic()
    async with collector.running():
        await asyncio.sleep(0.3)
    assert collector.collections >= 1
    assert full_collections
    assert full_collections[0] - started >= collector.min_interval_seconds


async def test_a_busy_process_is_collected_only_at_the_maximum_interval(
    full_collections: list[float],
) -> None:
    collector = fast()
    started = time.monotonic()
    async with collector.running():
        collector.request_started()  # an HTTP request in flight throughout
        await asyncio.sleep(0.4)
        assert collector.collections == 0
        assert full_collections == []
        await asyncio.sleep(0.4)
        assert collector.collections == 1
        collector.request_ended()
    assert full_collections[0] - started >= collector.max_interval_seconds


async def test_events_handed_out_keep_the_process_busy() -> None:
    """The event feed's activity (its `last_active`) counts as much as a request in flight."""
    collector = fast()
    collector.watch(time.monotonic)  # always just active
    async with collector.running():
        await asyncio.sleep(0.4)
        assert collector.collections == 0


async def test_each_pause_is_reported() -> None:
    pauses: list[float] = []
    collector = fast(on_collected=pauses.append)
    async with collector.running():
        await asyncio.sleep(0.3)
    assert len(pauses) == collector.collections >= 1
    assert all(pause > 0 for pause in pauses)


async def test_allocation_pressure_starts_a_collection_in_a_busy_process(
    full_collections: list[float],
) -> None:
    """Generation-1 collections since the last full one (gc.get_count()[2]) bound what a
    pass may have to walk, whatever the load."""
    collector = fast(max_interval_seconds=3600, pressure_collections=5)
    gc.collect()  # generation-1 collections counted from here
    async with collector.running():
        collector.request_started()
        await asyncio.sleep(0.1)
        assert collector.collections == 0
        for _ in range(5):
            gc.collect(1)
        await asyncio.sleep(0.1)
        assert collector.collections == 1
        assert full_collections
        collector.request_ended()


def test_a_pass_that_finds_much_garbage_makes_the_next_come_sooner() -> None:
    collector = QuietCollector(pressure_collections=50, garbage_pressure_collections=10)
    gc.collect()
    cycles = []
    for _ in range(len(gc.get_objects())):  # as much garbage as there are live objects
        cycle: list[object] = []
        cycle.append(cycle)
        cycles.append(cycle)
    del cycles, cycle
    collector.collect()
    assert collector.garbage_heavy
    collector.collect()  # nothing new to find
    assert not collector.garbage_heavy


async def test_the_schedule_survives_a_failing_check(full_collections: list[float]) -> None:
    """Nothing else would run the full collections: one failed check must not end them."""
    calls = {"n": 0}

    def flaky() -> float:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a broken activity source")
        return 0.0

    found = gc.get_threshold()
    collector = fast()
    collector.watch(flaky)
    async with collector.running():
        await asyncio.sleep(0.4)
    assert calls["n"] > 1
    assert collector.collections >= 1
    assert gc.get_threshold() == found


async def test_http_requests_count_as_in_flight_and_socket_messages_as_activity() -> None:
    collector = QuietCollector()
    seen: list[tuple[str, int]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
        seen.append((scope["type"], collector.in_flight))

    middleware = RequestContextMiddleware(app, Metrics(), collector)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    http = {"type": "http", "method": "GET", "path": "/healthz", "headers": []}
    await middleware(http, receive, send)
    assert collector.quiet(time.monotonic()) is False  # the request has just ended
    collector._last_activity = 0.0
    assert collector.quiet(time.monotonic()) is True
    await middleware({"type": "websocket", "path": "/graphql", "headers": []}, receive, send)
    assert seen == [("http", 1), ("websocket", 0)]
    assert collector.in_flight == 0
    assert collector.quiet(time.monotonic()) is False  # a message has just arrived
