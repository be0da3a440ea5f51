"""Two server processes on one database (PostgreSQL, or one SQLite file), each with its own
in-memory response cache: a write through one is seen by the very next read through the other,
which had cached the old answer. And one server's hits, answered before Strawberry, over real
sockets: the very bytes and headers of the executed answer."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.e2e.conftest import RunningServer, launch

ORDERS = "{ orders(first: 20) { totalCount edges { node { id state mass { amount unit } } } } }"
VIEWER = "{ viewer { mode account { name status } } }"
CREATE = 'mutation { createOrderByMass(input: {mass: {amount: "3", unit: KG}}) { order { id } } }'


@contextmanager
def two_servers(
    database_url: str, tmp_path: Path, **env: str
) -> Iterator[tuple[RunningServer, RunningServer]]:
    # No workers: nothing but the test's own requests writes.
    options = {"CG_RUN_WORKER": "false", "CG_DEBUG": "true", **env}
    with (
        launch(database_url, tmp_path / "a.log", **options) as a,
        launch(database_url, tmp_path / "b.log", **options) as b,
    ):
        yield a, b


def ask(server: RunningServer, key: str, query: str) -> dict:  # type: ignore[type-arg]
    response = httpx.post(
        f"{server.base_url}/graphql",
        json={"query": query},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body  # type: ignore[no-any-return]


def write_then_read_elsewhere(writer: RunningServer, reader: RunningServer) -> None:
    key = writer.demo_key("test", "standard")  # the first server seeded the demo account
    before = ask(reader, key, ORDERS)
    cached = ask(reader, key, ORDERS)
    assert cached["extensions"]["cache"] == "HIT"
    assert cached["data"] == before["data"]

    created = ask(writer, key, CREATE)["data"]["createOrderByMass"]["order"]["id"]

    after = ask(reader, key, ORDERS)
    assert after["extensions"]["cache"] == "MISS"
    orders = after["data"]["orders"]
    assert orders["totalCount"] == before["data"]["orders"]["totalCount"] + 1
    assert orders["edges"][0]["node"]["id"] == created
    assert ask(reader, key, ORDERS)["extensions"]["cache"] == "HIT"


def test_a_write_through_one_process_is_seen_by_the_next_read_through_another(
    database_url: str, tmp_path: Path
) -> None:
    with two_servers(database_url, tmp_path) as (writer, reader):
        write_then_read_elsewhere(writer, reader)


def test_processes_sharing_a_redis_cache_share_answers_and_never_serve_stale_ones(
    database_url: str, tmp_path: Path, redis_url: str
) -> None:
    # Behind one public URL, as behind a load balancer: the request's host is then no part of
    # the key (without it, each process's own host:port would be).
    shared = {
        "CG_REDIS_URL": redis_url,
        "CG_PUBLIC_URL": "https://api.example.com",
        # What is tested is sharing, not the give-up on a slow Redis (tests/test_bounded_redis.py):
        # at the 0.1 s default, one slow answer on a loaded machine (a full CI run) would send
        # the process around Redis for 5 s, answering MISS where this test expects HIT.
        "CG_REDIS_TIMEOUT_SECONDS": "5",
    }
    with two_servers(database_url, tmp_path, **shared) as (writer, reader):
        key = writer.demo_key("test", "standard")
        ask(reader, key, VIEWER)
        assert ask(writer, key, VIEWER)["extensions"]["cache"] == "HIT"  # cached by the other
        write_then_read_elsewhere(writer, reader)


def comparable(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    """What two answers to one request must share: all but the request id and the clock."""
    varying = ("x-request-id", "date")
    headers = {k: v for k, v in response.headers.items() if k not in varying}
    return response.status_code, response.content, headers


def create_key(database_url: str, mode: str = "test") -> str:
    environment = {**os.environ, "CG_DATABASE_URL": database_url, "CG_SECRET_KEY": "e2e-secret"}
    created = subprocess.run(
        [sys.executable, "-m", "app", "keys", "create", "--account", "demo", "--mode", mode],
        check=True,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return created.stdout.strip().splitlines()[-1]


def test_a_hit_sends_over_sockets_the_bytes_and_headers_of_the_executed_answer(
    database_url: str, tmp_path: Path
) -> None:
    """Two keys of one principal scope share answers but not buckets: the first key's read is
    executed, the second key's is served from the cache, and they must agree byte for byte."""
    options = {"CG_RUN_WORKER": "false", "CG_RATE_LIMIT_PER_SECOND": "0.001"}
    with launch(database_url, tmp_path / "server.log", **options) as server:
        keys = [server.demo_key("test", "standard"), create_key(database_url)]
        for key in keys:
            ask(server, key, "{ __typename }")  # a key's first use is a write (lastUsedAt)
        for accept in ("application/json", "application/graphql-response+json"):
            document = ORDERS if accept == "application/json" else VIEWER
            answers = [
                httpx.post(
                    f"{server.base_url}/graphql",
                    json={"query": document},
                    headers={"Authorization": f"Bearer {key}", "Accept": accept},
                    timeout=10,
                )
                for key in keys
            ]
            executed, hit = (comparable(answer) for answer in answers)
            assert hit == executed
            assert executed[0] == 200
            assert executed[2]["content-type"] == accept
            assert executed[2]["ratelimit"].startswith('"cost";r=')

        before = ask(server, keys[1], ORDERS)["data"]["orders"]["totalCount"]
        ask(server, keys[0], CREATE)
        assert ask(server, keys[1], ORDERS)["data"]["orders"]["totalCount"] == before + 1
