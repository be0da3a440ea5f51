"""The floor under an uncached nested read on SQLite: its own statements, run by sqlite3 alone.

    .venv/bin/python -m bench.read_floor [requests]   # default 300

Issue 10 asks persisted operations to reach 0.15 of the ceiling uncached. This measures how
much of that budget the database work alone takes, on this machine, in one process:

- **ours**: CPU µs per nested read by APQ hash through our whole ASGI app (response cache
  off, compiled plans on), as bench/cache_hit.py calls it (no sockets, no uvicorn);
- **its statements, sqlite3 alone**: the very SQL and parameters that read ran (captured from
  the engines), executed and fetched with Python's sqlite3 on a connection of its own — no
  SQLAlchemy, no aiosqlite, no shaping: what any Python path reading the same rows pays;
- **encoding the answer**: orjson.dumps of the answer's `data` (the least a path that builds
  the JSON in Python does after fetching);
- **the ceiling**: bench/speed/ceiling.py's app answering the same bytes.

Each is the best of three rounds of `requests` (`time.process_time`). Over HTTP, uvicorn adds
its own cost to every row alike (bench.speed's ceiling is about 87 µs per request here).
"""

import asyncio
import hashlib
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event

from bench.cache_hit import _answer, _scope, call, cpu_per_request, seeded_app
from bench.speed.ceiling import create_app as create_ceiling
from bench.speed.reads import NESTED_READ


def _best_of_three(work: Any, n: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(n):
            work()
        best = min(best, (time.process_time() - started) / n * 1e6)
    return best


async def main(requests: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/bench.db"
        db, key, ours = await seeded_app(directory, response_cache=False)
        digest = hashlib.sha256(NESTED_READ.encode()).hexdigest()
        persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
        register = orjson.dumps({"query": NESTED_READ, "extensions": persisted})
        status, answer = _answer(await call(ours, _scope(key, register), register))
        assert status == 200, answer[:300]
        body = orjson.dumps({"extensions": persisted})
        scope = _scope(key, body)
        for _ in range(50):  # warm up: caches, the key's last-used write
            status, by_hash = _answer(await call(ours, scope, body))
        assert status == 200, by_hash[:300]
        assert by_hash == answer, "the hash's answer must be the text's"

        captured: list[tuple[str, Any]] = []

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if not statement.startswith(("BEGIN", "ROLLBACK", "COMMIT")):
                captured.append((statement, parameters))

        for engine in db.engines:
            event.listen(engine.sync_engine, "before_cursor_execute", capture)
        await call(ours, scope, body)
        for engine in db.engines:
            event.remove(engine.sync_engine, "before_cursor_execute", capture)

        ours_us = await cpu_per_request(ours, scope, body, requests)

        plain = sqlite3.connect(path, isolation_level=None)
        values = 0
        for statement, parameters in captured:
            rows = plain.execute(statement, parameters).fetchall()
            values += sum(len(row) for row in rows)

        def statements() -> None:
            plain.execute("BEGIN")
            for statement, parameters in captured:
                plain.execute(statement, parameters).fetchall()
            plain.execute("ROLLBACK")

        sql_us = _best_of_three(statements, requests)
        data = orjson.loads(answer)["data"]
        json_us = _best_of_three(lambda: orjson.dumps(data), requests)

        response_file = Path(directory) / "answer.json"
        response_file.write_bytes(answer)
        os.environ["BENCH_RESPONSE_FILE"] = str(response_file)
        ceiling = create_ceiling()
        ceiling_us = await cpu_per_request(ceiling, scope, body, requests)
        plain.close()
        await db.dispose()

    print(f"nested read by APQ hash, uncached, x{requests}, CPU µs per request (best of 3):")
    print(f"  ours, whole app                       {ours_us:9.1f}")
    print(
        f"  its {len(captured)} statements, sqlite3 alone        {sql_us:9.1f}"
        f"   ({values} values fetched)"
    )
    print(f"  encoding the answer (orjson)          {json_us:9.1f}   ({len(answer)} bytes)")
    print(f"  the ceiling's app                     {ceiling_us:9.1f}")
    for name, http_ceiling in (("in-process", ceiling_us), ("over HTTP, 87 µs", 87.0)):
        bound = http_ceiling / (http_ceiling + sql_us + json_us)
        print(
            f"  best ratio to the ceiling of a path paying only the statements and the "
            f"encoding ({name} ceiling): {bound:.3f}"
        )


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(int(arguments[0]) if arguments else 300))
