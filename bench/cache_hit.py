"""CPU per cache hit in-process: our whole ASGI app against the ceiling's, side by side.

    .venv/bin/python -m bench.cache_hit [requests] [--profile]   # default 20,000

Seeds a temporary SQLite file (the demo account, 20 fulfilled orders), builds the real app
(app/main.py, CG_RESPONSE_CACHE on, rate limit off, log level WARNING, as bench.speed runs
it) and the ceiling (bench/speed/ceiling.py, answering with the very bytes ours sent), then
calls each `requests` times through a minimal ASGI harness — one scope, one body message,
the sent messages kept — and prints µs of this process's CPU (`time.process_time`) per
request, best of three rounds. No sockets and no uvicorn: what is left is the application's
own cost, middleware to the last `send`. `--profile` prints cProfile's top functions of one
round of ours instead.
"""

import asyncio
import cProfile
import gc
import logging
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from app.config import Settings
from app.db import Database
from app.main import create_app
from app.migrations.runner import migrate
from bench.nested_read import SERVER_SECRET, _seed
from bench.speed.ceiling import create_app as create_ceiling
from bench.speed.reads import NESTED_READ

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _scope(key: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 18000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        # What wrk sends (bench/speed/wrk.py's script): host, the key, JSON.
        "headers": [
            (b"host", b"127.0.0.1:18000"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "state": {},
    }


async def call(app: ASGIApp, scope: dict[str, Any], body: bytes) -> list[dict[str, Any]]:
    """One request through `app`; the messages it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(scope, headers=list(scope["headers"]), state={}), receive, send)
    return sent


def _answer(sent: list[dict[str, Any]]) -> tuple[int, bytes]:
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def cpu_per_request(app: ASGIApp, scope: dict[str, Any], body: bytes, n: int) -> float:
    """µs of this process's CPU per request, best of three rounds of `n`."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(n):
            await call(app, scope, body)
        best = min(best, (time.process_time() - started) / n * 1e6)
    return best


async def seeded_app(directory: str, *, response_cache: bool) -> tuple[Database, str, ASGIApp]:
    """Our app over a new SQLite file in `directory` holding the demo account and 20
    fulfilled orders, set up as bench.speed runs it; its database and the demo test key."""
    url = f"sqlite+aiosqlite:///{directory}/bench.db"
    await migrate(url)
    db = Database.from_url(url)
    key = await _seed(db)
    settings = Settings(
        database_url=url,
        secret_key=SERVER_SECRET,
        run_worker=False,
        rate_limit_per_second=0,
        response_cache=response_cache,
        log_level="WARNING",
    )
    logging.getLogger().setLevel(logging.WARNING)  # as `serve` sets CG_LOG_LEVEL
    return db, key, create_app(settings, database=db)


async def main(requests: int, profile: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        db, key, ours = await seeded_app(directory, response_cache=True)
        body = orjson.dumps({"query": NESTED_READ})
        scope = _scope(key, body)
        status, answer = _answer(await call(ours, scope, body))  # the miss: stores it
        assert status == 200, answer[:500]
        assert b'"errors"' not in answer, answer[:500]
        hits_before = ours.state.cache_hits.served
        status, hit = _answer(await call(ours, scope, body))
        assert ours.state.cache_hits.served == hits_before + 1, "the second read was no hit"
        assert hit == answer, "a hit must send the executed answer's bytes"

        response_file = Path(directory) / "answer.json"
        response_file.write_bytes(answer)
        os.environ["BENCH_RESPONSE_FILE"] = str(response_file)
        ceiling = create_ceiling()
        assert _answer(await call(ceiling, scope, body)) == (200, answer)

        for _ in range(500):  # warm up both
            await call(ours, scope, body)
            await call(ceiling, scope, body)
        gc.collect()
        gc.freeze()  # as the server does once started
        if profile:
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            for _ in range(requests):
                await call(ours, scope, body)
            profiler.disable()
            stats = pstats.Stats(profiler).sort_stats("tottime")
            stats.print_stats(40)
            stats.sort_stats("cumulative").print_stats(50)
        else:
            ceiling_us = await cpu_per_request(ceiling, scope, body, requests)
            ours_us = await cpu_per_request(ours, scope, body, requests)
            print(
                f"cache hit x{requests}, in-process CPU per request (best of 3): "
                f"ours {ours_us:.1f} µs, ceiling {ceiling_us:.1f} µs, "
                f"difference {ours_us - ceiling_us:.1f} µs, ratio {ceiling_us / ours_us:.3f}"
            )
        await db.dispose()


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(int(arguments[0]) if arguments else 20_000, "--profile" in sys.argv))
