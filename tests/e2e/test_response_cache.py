"""Two server processes on one database (PostgreSQL, or one SQLite file), each with its own
in-memory response cache: a write through one is seen by the very next read through the other,
which had cached the old answer."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.e2e.conftest import RunningServer, launch

ORDERS = "{ orders(first: 20) { totalCount edges { node { id state mass { amount unit } } } } }"
VIEWER = "{ viewer { mode account { name status } } }"
CREATE = 'mutation { createOrderByMass(input: {mass: {amount: "3", unit: KG}}) { order { id } } }'
PORTS = range(18200, 18300)  # this test's own range on the shared machine


def port_in_range(taken: set[int]) -> int:
    for port in PORTS:
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError(f"no free port in {PORTS}")


@contextmanager
def two_servers(
    database_url: str, tmp_path: Path, **env: str
) -> Iterator[tuple[RunningServer, RunningServer]]:
    # No workers: nothing but the test's own requests writes.
    options = {"CG_RUN_WORKER": "false", "CG_DEBUG": "true", **env}
    first = port_in_range(set())
    with launch(database_url, tmp_path / "a.log", first, **options) as a:
        second = port_in_range({first})
        with launch(database_url, tmp_path / "b.log", second, **options) as b:
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
    shared = {"CG_REDIS_URL": redis_url, "CG_PUBLIC_URL": "https://api.example.com"}
    with two_servers(database_url, tmp_path, **shared) as (writer, reader):
        key = writer.demo_key("test", "standard")
        ask(reader, key, VIEWER)
        assert ask(writer, key, VIEWER)["extensions"]["cache"] == "HIT"  # cached by the other
        write_then_read_elsewhere(writer, reader)
