"""The parts of `python -m bench.speed` a wrong figure would come from: wrk's report parsing,
its Lua scripts against a real wrk, the shape comparison, the answer check, stock Strawberry's
schema and the oversell arithmetic. (A whole `--quick --only reads` run takes over 30 s.)"""

import copy
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.speed import wrk
from bench.speed.database import BatchStock
from bench.speed.reads import NESTED_READ, PAGE, checked_answer, shape
from bench.speed.servers import started

REPORT = """Running 1s test @ http://127.0.0.1:18090/nothere
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   436.92us  727.41us   6.67ms   90.55%
    Req/Sec    17.46k     7.13k   23.50k    63.64%
  Latency Distribution
     50%  167.00us
     75%  231.00us
     90%    1.09ms
     99%    1.20s
  19070 requests in 1.10s, 2.71MB read
  Socket errors: connect 0, read 2, write 0, timeout 5
  Non-2xx or 3xx responses: 19
Requests/sec:  17266.11
Transfer/sec:      2.45MB
failed 23
"""


def test_wrk_report_gives_rate_percentiles_and_failures_in_seconds() -> None:
    result = wrk.parse_report(REPORT)

    assert result.requests == 19070
    assert result.requests_per_second == 17266.11
    assert result.p50_seconds == pytest.approx(167e-6)
    assert result.p99_seconds == pytest.approx(1.2)
    assert (result.non_2xx, result.socket_errors, result.failed) == (19, 7, 23)


def test_wrk_report_without_errors_counts_none() -> None:
    clean = "\n".join(
        line
        for line in REPORT.splitlines()
        if not line.lstrip().startswith(("Socket", "Non", "failed"))
    )

    result = wrk.parse_report(clean)

    assert (result.non_2xx, result.socket_errors, result.failed) == (0, 0, 0)


def test_wrk_report_without_latency_distribution_is_refused() -> None:
    without = REPORT.replace("Latency Distribution", "").replace("     50%  167.00us\n", "")

    with pytest.raises(ValueError, match="50%"):
        wrk.parse_report(without)


def test_lua_strings_refuse_control_characters() -> None:
    assert wrk.static_post_script('{"query": "{\\n x }"}', {}).count("wrk.body") == 1
    with pytest.raises(ValueError, match="control character"):
        wrk.static_post_script("\x01", {})


def node(index: int, certificate: bool = True) -> dict[str, Any]:
    return {
        "id": f"T3JkZXI6{index}",
        "state": "FULFILLED",
        "createdAt": "2026-12-02T05:00:00+00:00",
        "mass": {"amount": "1", "unit": "T"},
        "price": {"amount": "47.75", "currency": "USD"},
        "certificate": {"id": f"c{index}", "publicUrl": f"http://x/certificates/c{index}"}
        if certificate
        else None,
        "allocations": [
            {
                "mass": {"amount": "0.5", "unit": "T"},
                "project": {"id": "UHJvamVjdDox", "name": "Forest"},
                "bundle": {"id": "QnVuZGxlOjE=", "name": "Nature"},
                "creditBatch": {"vintage": 2020 + part},
            }
            for part in range(3)
        ],
    }


def page() -> dict[str, Any]:
    return {"data": {"orders": {"edges": [{"node": node(index)} for index in range(PAGE)]}}}


def test_shape_compares_structure_not_values() -> None:
    other_values = copy.deepcopy(page())
    other_values["data"]["orders"]["edges"][0]["node"]["price"]["amount"] = "1.00"
    fewer_allocations = copy.deepcopy(page())
    fewer_allocations["data"]["orders"]["edges"][0]["node"]["allocations"].pop()
    renamed = copy.deepcopy(page())
    renamed["data"]["orders"]["edges"][0]["node"]["created"] = renamed["data"]["orders"]["edges"][
        0
    ]["node"].pop("createdAt")
    without_certificate = {"data": {"orders": {"edges": [{"node": node(0, certificate=False)}]}}}
    with_certificate = {"data": {"orders": {"edges": [{"node": node(0)}]}}}

    assert shape(other_values) == shape(page())
    assert shape(fewer_allocations) != shape(page())
    assert shape(renamed) != shape(page())
    assert shape(without_certificate) != shape(with_certificate)


def test_only_a_full_page_without_errors_is_benchmarked() -> None:
    body = json.dumps(page()).encode()
    short = copy.deepcopy(page())
    short["data"]["orders"]["edges"].pop()
    unfulfilled = copy.deepcopy(page())
    unfulfilled["data"]["orders"]["edges"][3]["node"]["allocations"] = []
    with_errors = {**page(), "errors": [{"message": "boom"}]}

    assert checked_answer(200, body) == page()
    for status, answer in ((500, page()), (200, short), (200, unfulfilled), (200, with_errors)):
        with pytest.raises(RuntimeError):
            checked_answer(status, json.dumps(answer).encode())


async def test_stock_strawberry_answers_our_data_in_our_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.speed import stock_strawberry

    response_file = tmp_path / "response.json"
    response_file.write_text(json.dumps(page()))
    monkeypatch.setenv(stock_strawberry.RESPONSE_FILE, str(response_file))
    transport = httpx.ASGITransport(app=stock_strawberry.create_app())

    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        response = await http.post("/graphql", json={"query": NESTED_READ})

    assert checked_answer(response.status_code, response.content) == page()


def test_batch_stock_is_oversold_when_allocations_and_remaining_disagree() -> None:
    assert not BatchStock("A", 1_000, 400, 600).oversold
    assert BatchStock("A", 1_000, 0, 1_001).oversold  # allocated more than there was
    assert BatchStock("A", 1_000, -1, 1_001).oversold
    assert BatchStock("A", 1_000, 500, 400).oversold  # stock vanished without allocation


@pytest.mark.skipif(
    shutil.which(wrk.WRK) is None and os.environ.get("CI") != "true",
    reason="wrk is not installed (under CI=true .ci/run installs it, and this must run)",
)
async def test_numbered_script_counts_answers_without_the_marker(tmp_path: Path) -> None:
    response_file = tmp_path / "response.json"
    response_file.write_text('{"data":{"createOrderByMass":{"userErrors":[]}}}')
    command = [sys.executable, "-m", "bench.speed.ceiling", str(response_file)]
    script = tmp_path / "create.lua"

    async with started("test-ceiling", command, {}, cpu="0,1") as server:
        url = f"{server.url}/graphql"
        script.write_text(wrk.numbered_post_script('{"key":"k-', '"}', {}, '"userErrors":[]'))
        fine = await wrk.run(url, script, 1, 2)
        script.write_text(wrk.numbered_post_script('{"key":"k-', '"}', {}, '"order":{'))
        refused = await wrk.run(url, script, 1, 2)

    assert fine.requests > 0
    assert (fine.failed, fine.non_2xx) == (0, 0)
    assert refused.failed == refused.requests > 0


def test_wrk_trouble_names_only_nonzero_counts() -> None:
    assert wrk.parse_report(REPORT).trouble() == "; non-2xx 19; failed 23; socket errors 7"
