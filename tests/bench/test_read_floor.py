"""`python -m bench.read_floor` runs end to end and prints every figure it promises."""

import subprocess
import sys


def test_read_floor_prints_ours_the_statements_the_encoding_and_the_ceiling() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.read_floor", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = run.stdout
    for figure in (
        "ours, whole app",
        "statements, sqlite3 alone",
        "encoding the answer",
        "the ceiling's app",
        "over HTTP, 87 µs ceiling",
    ):
        assert figure in out, out
    assert "its 2 statements" in out, out  # the nested read's page and its allocations
