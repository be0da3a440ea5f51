"""While hostile requests pour in, everyone else is still served fast: a real server, over
sockets, on SQLite and PostgreSQL.

Two client processes fire every row of the hostile table (tests/graphql/hostile_cases.py) in a
loop for HOSTILE_SECONDS; meanwhile the test sends `{ viewer { mode } }` again and again and
asserts its worst latency stays under CHEAP_QUERY_BUDGET_MS. One request that parses without
bounds on the event loop (issue 7: 23 s for `1e999999` grams) makes every other client wait
with it.
"""

import contextlib
import multiprocessing
import statistics
import time
from dataclasses import dataclass
from typing import Any

import httpx

from tests.e2e.conftest import RunningServer
from tests.graphql.hostile_cases import CASES, VIEWER, body, with_ids

HOSTILE_SECONDS = 6.0
HOSTILE_CLIENTS = 2
SPAWN_SECONDS = 1.0  # a spawned process imports the test modules before it fires
# Measured: on the quiet 2-core machine p50 4 ms, worst 9-11 ms; with other jobs sharing the
# cores, worst 100-250 ms and single stalls of 300-700 ms (also without hostile input), which
# the second window absorbs. Issue 7 saw 23 s.
CHEAP_QUERY_BUDGET_MS = 250
# A hostile request may hang on a server that freezes; the test still ends.
REQUEST_TIMEOUT_SECONDS = 60.0


def _project_id(server: RunningServer, headers: dict[str, str]) -> str:
    response = httpx.post(
        f"{server.base_url}/graphql",
        json={"query": "{ projects(first: 1) { edges { node { id } } } }"},
        headers=headers,
    )
    return str(response.json()["data"]["projects"]["edges"][0]["node"]["id"])


def fire_hostile_requests(
    base_url: str,
    headers: dict[str, str],
    bodies: list[bytes],
    seconds: float,
    offset: int,
    results: Any,
) -> None:
    """One hostile client, in its own process so that its work never delays the timed client's
    (threads would share one GIL with it): send the bodies in turn for `seconds`."""
    statuses: list[int] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS) as http:
        index = offset
        while time.monotonic() < deadline:
            try:
                response = http.post(
                    "/graphql", content=bodies[index % len(bodies)], headers=headers
                )
                statuses.append(response.status_code)
            except httpx.TransportError:
                statuses.append(0)
            index += 1
    results.put(statuses)


@dataclass
class Window:
    """One run of hostile load: the cheap query's latencies and the hostile answers' statuses."""

    latencies_ms: list[float]
    statuses: list[int]

    @property
    def worst(self) -> float:
        return max(self.latencies_ms)

    def describe(self, kinds: int) -> str:
        errors = sum(1 for status in self.statuses if status >= 500 or status == 0)
        return (
            f"{len(self.latencies_ms)} cheap queries, p50 "
            f"{statistics.median(self.latencies_ms):.1f} ms, worst {self.worst:.1f} ms; "
            f"{len(self.statuses)} hostile requests ({kinds} kinds) from {HOSTILE_CLIENTS} "
            f"processes, {errors} answered 5xx or no answer"
        )


def hostile_window(base_url: str, headers: dict[str, str], bodies: list[bytes]) -> Window:
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    clients = [
        spawn.Process(
            target=fire_hostile_requests,
            args=(base_url, headers, bodies, HOSTILE_SECONDS, n * len(bodies) // 2, results),
        )
        for n in range(HOSTILE_CLIENTS)
    ]
    latencies_ms: list[float] = []
    statuses: list[int] = []
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS) as http:
        cheap = body(VIEWER)
        http.post("/graphql", content=cheap, headers=headers)  # warm
        for client in clients:
            client.start()
        try:
            time.sleep(SPAWN_SECONDS)  # let the hostile clients start their loops
            deadline = time.monotonic() + HOSTILE_SECONDS - SPAWN_SECONDS
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = http.post("/graphql", content=cheap, headers=headers)
                latencies_ms.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
                assert response.json()["data"]["viewer"]["mode"] == "TEST"
                time.sleep(0.01)
            for _ in clients:
                statuses += results.get(timeout=REQUEST_TIMEOUT_SECONDS + HOSTILE_SECONDS)
        finally:
            for client in clients:
                client.join(timeout=REQUEST_TIMEOUT_SECONDS)
                if client.is_alive():
                    client.kill()
    return Window(latencies_ms, statuses)


def test_a_cheap_query_stays_fast_while_hostile_requests_run(server: RunningServer) -> None:
    key = server.demo_key("test", "admin")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    project_id = _project_id(server, headers)
    bodies = [with_ids(case.content, project_id) for case in CASES]
    # Warm: each path's first run compiles statements and fills caches (100-300 ms on a busy
    # machine, with or without hostile input); the test is about what hostile input costs.
    with httpx.Client(base_url=server.base_url, timeout=REQUEST_TIMEOUT_SECONDS) as http:
        for content in [*bodies, body(VIEWER)]:
            # Answers are test_hostile_inputs.py's concern; this test times everyone else's.
            with contextlib.suppress(httpx.TransportError):
                http.post("/graphql", content=content, headers=headers)
    windows = [hostile_window(server.base_url, headers, bodies)]
    if windows[0].worst >= CHEAP_QUERY_BUDGET_MS:
        # A second window: on a shared CPU the timed client itself can be descheduled for a
        # moment; a server that stalls on hostile input stalls in both windows.
        windows.append(hostile_window(server.base_url, headers, bodies))
    for number, window in enumerate(windows, 1):
        print(f"\ncheap query under hostile load, window {number}: {window.describe(len(bodies))}")
    best = min(windows, key=lambda window: window.worst)
    assert best.worst < CHEAP_QUERY_BUDGET_MS, best.describe(len(bodies))
    assert len(best.statuses) >= len(bodies), best.describe(len(bodies))
