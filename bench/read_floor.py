"""The floor under an uncached nested read on SQLite: its own statements, run by sqlite3 alone.

    .venv/bin/python -m bench.read_floor [requests] [--http-ceiling-us 87]   # default 300

Issue 10 asks persisted operations to reach 0.15 of the ceiling uncached. This measures how
much of that budget the database work alone takes, on this machine, in one process:

- **ours**: CPU µs per nested read by APQ hash through our whole ASGI app (response cache
  off, compiled plans on), as bench/cache_hit.py calls it (no sockets, no uvicorn);
- **its statements, sqlite3 alone**: the very SQL and parameters that read ran (captured from
  the engines), executed and fetched with Python's sqlite3 on a connection of its own — no
  SQLAlchemy, no aiosqlite, no shaping: what any Python path reading the same rows pays;
- **encoding the answer**: orjson.dumps of the answer's `data` (the least a path that builds
  the JSON in Python does after fetching);
- **the database building the JSON**: one SQLite statement (`json_object` /
  `json_group_array`, as PostGraphile and Hasura have PostgreSQL do) that returns this read's
  whole `data` as text, written by hand for this one shape — a probe of what the compiled
  JSON plans of issue 10's step 3 could reach, not a feature — checked equal to our answer's
  data; SQLite has no base64, so the public ids (`base64("Order:<uuid>")`) come out as
  `Order:<hex>` and a regular expression with a memo swaps them in Python, timed apart;
- **the ceiling**: bench/speed/ceiling.py's app answering the same bytes.

Each is the best of three rounds of `requests` (`time.process_time`). Over HTTP, uvicorn adds
its own cost to every row alike: bench.speed's ceiling per server CPU-second gives it (87 µs per
request on 2026-12-02, 51 µs on 2026-12-04's faster machine); pass that day's figure as
`--http-ceiling-us` (default 87).
"""

import argparse
import asyncio
import base64
import hashlib
import os
import re
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event

from bench.cache_hit import _answer, _scope, call, cpu_per_request, seeded_app
from bench.speed.ceiling import create_app as create_ceiling
from bench.speed.reads import NESTED_READ

# `orders(first: 20) { … }` of bench/speed/reads.py, newest first, built by SQLite.
DATA_AS_JSON = """
SELECT json_object('orders', json_object('edges', json((
  SELECT json_group_array(json_object('node', json_object(
    'id', 'Order:' || o.id,
    'state', o.state,
    'createdAt', replace(o.created_at, ' ', 'T') || '+00:00',
    'mass', json_object(
      'amount', (o.mass_grams / 1000) || '.' || printf('%03d', o.mass_grams % 1000),
      'unit', 'KG'),
    'price', json_object(
      'amount', (o.price_minor / 100) || '.' || printf('%02d', o.price_minor % 100),
      'currency', o.currency),
    'certificate', CASE WHEN o.certificate_id IS NULL THEN NULL ELSE json_object(
      'id', o.certificate_id, 'publicUrl', :base || '/certificates/' || o.certificate_id) END,
    'allocations', json((
      SELECT json_group_array(json_object(
        'mass', json_object(
          'amount', (a.mass_grams / 1000) || '.' || printf('%03d', a.mass_grams % 1000),
          'unit', 'KG'),
        'project', json_object('id', 'Project:' || p.id, 'name', p.name),
        'bundle', json_object('id', 'Bundle:' || b.id, 'name', b.name),
        'creditBatch', json_object('vintage', c.vintage)))
      FROM allocation a
      JOIN project p ON p.id = a.project_id
      JOIN bundle b ON b.id = a.bundle_id
      JOIN credit_batch c ON c.id = a.credit_batch_id
      WHERE a.order_id = o.id)))))
  FROM (SELECT * FROM offset_order WHERE account_id = :account AND mode = :mode
        ORDER BY created_at DESC, id DESC LIMIT 20) o))))
"""
_RAW_ID = re.compile(r'"(Order|Project|Bundle):([0-9a-f]{32})"')


def _public_ids(text: str, memo: dict[str, str]) -> str:
    def encode(match: re.Match[str]) -> str:
        found = memo.get(match.group(0))
        if found is None:
            plain = f"{match.group(1)}:{uuid.UUID(match.group(2))}"
            found = memo[match.group(0)] = f'"{base64.b64encode(plain.encode()).decode()}"'
        return found

    return _RAW_ID.sub(encode, text)


def _best_of_three(work: Any, n: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(n):
            work()
        best = min(best, (time.process_time() - started) / n * 1e6)
    return best


async def main(requests: int, http_ceiling_us: float) -> None:
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

        account, mode = plain.execute("SELECT account_id, mode FROM offset_order").fetchone()
        base = orjson.loads(answer)["data"]["orders"]["edges"][0]["node"]["certificate"]
        parameters = {
            "account": account,
            "mode": mode,
            "base": base["publicUrl"].rsplit("/certificates/", 1)[0],
        }
        memo: dict[str, str] = {}

        def data_as_json() -> str:
            plain.execute("BEGIN")
            text = plain.execute(DATA_AS_JSON, parameters).fetchone()[0]
            plain.execute("ROLLBACK")
            return str(text)

        built = data_as_json()
        assert orjson.loads(_public_ids(built, memo)) == orjson.loads(answer)["data"]
        json_sql_us = _best_of_three(data_as_json, requests)
        ids_us = _best_of_three(lambda: _public_ids(built, memo), requests)
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
    print(f"  the same data as JSON, built by SQLite {json_sql_us:8.1f}")
    print(f"  + its public ids swapped in (Python)  {ids_us:9.1f}")
    print(f"  the ceiling's app                     {ceiling_us:9.1f}")
    over_http = (f"over HTTP, {http_ceiling_us:g} µs", http_ceiling_us)
    for name, http_ceiling in (("in-process", ceiling_us), over_http):
        bound = http_ceiling / (http_ceiling + sql_us + json_us)
        print(
            f"  best ratio to the ceiling of a path paying only the statements and the "
            f"encoding ({name} ceiling): {bound:.3f}"
        )
        built_bound = http_ceiling / (http_ceiling + json_sql_us + ids_us)
        print(
            f"  best ratio of a path paying only SQLite's JSON and the ids "
            f"({name} ceiling): {built_bound:.3f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("requests", type=int, nargs="?", default=300)
    parser.add_argument("--http-ceiling-us", type=float, default=87.0)
    parsed = parser.parse_args()
    asyncio.run(main(parsed.requests, parsed.http_ceiling_us))
