"""In-process timing of the nested orders read (issue 10), through the whole HTTP path.

    .venv/bin/python -m bench.nested_read [requests]   # default 200
    .venv/bin/python -m bench.nested_read [requests] --compare-plans

Seeds the demo account on a temporary SQLite file, places and fulfils 20 orders, then sends
the nested read `requests` times with httpx's ASGITransport (parsing, auth, limits, execution
and encoding included; no sockets) and prints ms per request by the wall clock and in CPU time
of this one process (which both serves and asks: steadier than the wall clock on a shared
machine), and SQL statements per request (SQLite's explicit BEGINs left out, as the tests
count). Every request is executed (response cache off). With `--compare-plans`: three
alternating rounds with compiled plans off and on (CG_COMPILED_PLANS), the best of each by
CPU, their ratio, and whether both answered the very same bytes. A quick comparison of two
versions of the code on one machine, not a load test.
"""

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/nested_read.py`

from app.accounts import service as accounts
from app.accounts.models import Mode
from app.config import Settings
from app.db import Database
from app.demo import seed_demo
from app.main import create_app
from app.migrations.runner import migrate
from app.offsets import service as offsets
from app.offsets.fulfilment import fulfil_pending

SERVER_SECRET = "bench-nested-read-secret"  # noqa: S105  # a throwaway database's
ORDERS = 20
NESTED_READ = """{ orders(first: 20) { edges { node { id state createdAt
  mass { amount unit } price { amount currency }
  certificate { id publicUrl }
  allocations { mass { amount } project { id name } bundle { id name }
    creditBatch { vintage } } } } } }"""


async def _seed(db: Database) -> str:
    async with db.transaction() as session:
        keys = await seed_demo(session, SERVER_SECRET)
    key = next(k.key for k in keys if k.mode is Mode.TEST and not k.admin)
    async with db.session() as session:
        principal, _ = await accounts.authenticate(session, key)
    for _ in range(ORDERS):
        async with db.transaction() as session:
            await offsets.create_order_by_mass(session, principal, 1_000, offsets.OrderOptions())
    await fulfil_pending(db, SERVER_SECRET)
    return key


async def measure(
    url: str, db: Database, key: str, requests: int, *, compiled_plans: bool
) -> tuple[list[float], float, float, bytes]:
    """Wall-clock timings (ms), CPU ms and statements per request, and the last answer."""
    settings = Settings(
        database_url=url,
        secret_key=SERVER_SECRET,
        run_worker=False,
        rate_limit_per_second=0,
        response_cache=False,  # every request executed: the uncached read
        compiled_plans=compiled_plans,
    )
    app = create_app(settings, database=db)
    statements = 0

    def count(*args: object) -> None:
        nonlocal statements
        statements += not str(args[2]).startswith("BEGIN")  # as tests/conftest.py counts

    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}"}
    answer = b""
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:

        async def read() -> None:
            nonlocal answer
            response = await http.post("/graphql", json={"query": NESTED_READ}, headers=headers)
            body = response.json()
            assert "errors" not in body, body
            assert len(body["data"]["orders"]["edges"]) == ORDERS, body
            answer = response.content

        for _ in range(20):  # warm up: caches, the key's last-used write
            await read()
        for engine in db.engines:  # on SQLite, reads have an engine of their own
            event.listen(engine.sync_engine, "before_cursor_execute", count)
        timings = []
        cpu_started = time.process_time()
        for _ in range(requests):
            started = time.perf_counter()
            await read()
            timings.append((time.perf_counter() - started) * 1000)
        cpu_ms = (time.process_time() - cpu_started) * 1000 / requests
        for engine in db.engines:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
    return sorted(timings), cpu_ms, statements / requests, answer


def report(label: str, timings: list[float], cpu_ms: float, statements: float) -> None:
    print(
        f"nested read x{len(timings)} (SQLite, in-process{label}): "
        f"mean {statistics.fmean(timings):.2f} ms, p50 {timings[len(timings) // 2]:.2f} ms, "
        f"p90 {timings[int(len(timings) * 0.9)]:.2f} ms, "
        f"CPU {cpu_ms:.2f} ms, {statements:.1f} statements per request"
    )


async def main(requests: int, compare_plans: bool = False) -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{directory}/bench.db"
        await migrate(url)
        db = Database.from_url(url)
        key = await _seed(db)
        if not compare_plans:
            timings, cpu_ms, statements, _ = await measure(
                url, db, key, requests, compiled_plans=True
            )
            report("", timings, cpu_ms, statements)
        else:
            # Alternating rounds, so that both see the same noise of a shared machine.
            runs: dict[bool, list[tuple[list[float], float, float, bytes]]] = {True: [], False: []}
            for _ in range(3):
                for planned in (False, True):
                    runs[planned].append(
                        await measure(url, db, key, requests, compiled_plans=planned)
                    )
            for planned in (False, True):
                best = min(runs[planned], key=lambda run: run[1])
                label = ", plans on" if planned else ", plans off"
                report(label + " (best of 3 by CPU)", best[0], best[1], best[2])
            off, on = min(r[1] for r in runs[False]), min(r[1] for r in runs[True])
            same = runs[True][-1][3] == runs[False][-1][3]
            print(f"CPU per read, plans on / off: {on / off:.2f}; answers byte-identical: {same}")
            assert same, "a planned answer differs from the executor's"
        await db.dispose()


if __name__ == "__main__":
    arguments = [argument for argument in sys.argv[1:] if not argument.startswith("--")]
    asyncio.run(
        main(int(arguments[0]) if arguments else 200, compare_plans="--compare-plans" in sys.argv)
    )
