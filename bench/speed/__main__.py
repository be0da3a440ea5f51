"""Issue 10's speed benchmark, side by side from one run.

    .venv/bin/python -m bench.speed [--only reads|writes] [--database sqlite|postgresql|both]
                                    [--duration 10] [--write-duration 30] [--quick]

Reads: the nested `orders(first: 20)` read against plain Starlette serving our bytes (the
ceiling), stock Strawberry over in-memory objects, and our server uncached, cached and by
APQ hash; req/s, p50, p99 and the ratio to the ceiling (wrk -t1 -c16 on CPU 1, each server
alone on CPU 0). Writes: 32 wrk connections calling createOrderByMass for a fixed window on
SQLite (one server, in-process worker) and PostgreSQL (one server, one worker process):
orders created and fulfilled per second, create p50/p99, backlog, and no oversell. Then the
issue's targets beside the figures, with the machine's load average.
"""

import argparse
import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from bench.speed import wrk
from bench.speed.reads import CACHED, CEILING, PERSISTED, STOCK, UNCACHED, ReadFigure, run_reads
from bench.speed.writes import WriteFigure, run_writes

SHARED_LOAD = 1.5  # above this load average at the start, others already use our cores
SHARED_OTHERS = 0.5  # CPUs used on average by processes this run did not start
QUICK_SECONDS = 2


@dataclass(frozen=True)
class Target:
    what: str
    goal: str
    figure: str
    met: bool


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", choices=["reads", "writes"])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=float, default=10, help="seconds per read run")
    parser.add_argument("--write-duration", type=float, default=30, help="write window (s)")
    parser.add_argument("--quick", action="store_true", help="2 s runs, to smoke-test")
    options = parser.parse_args()
    if options.quick:
        options.duration = options.write_duration = QUICK_SECONDS
    return options


def print_reads(figures: list[ReadFigure]) -> None:
    """Ratio: to the ceiling's req/s (the issue's figure); per CPU: to its requests per
    server CPU-second, which moves less when other processes take the server's core."""
    ceiling = figures[0]
    print(
        f"\n{'nested read, 20 orders':30} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>7}"
        f" {'req/CPU-s':>10} {'ratio':>7}"
    )
    for figure in figures:
        result = figure.result
        print(
            f"{figure.name:30} {result.requests_per_second:9.1f}"
            f" {result.p50_seconds * 1000:8.2f} {result.p99_seconds * 1000:8.2f}"
            f" {result.requests_per_second / ceiling.result.requests_per_second:7.4f}"
            f" {figure.requests_per_cpu_second:10.1f}"
            f" {figure.requests_per_cpu_second / ceiling.requests_per_cpu_second:7.4f}"
        )


def print_writes(figures: list[WriteFigure]) -> None:
    print(
        f"\n{'createOrderByMass x32':22} {'created/s':>9} {'fulfilled/s':>11} {'p50 ms':>7}"
        f" {'p99 ms':>7} {'backlog':>8} {'+5 s':>6} {'oversold':>9} {'created/CPU-s':>14}"
    )
    for figure in figures:
        window = figure.window
        print(
            f"{figure.database:22} {window.created_per_second:9.1f}"
            f" {window.fulfilled_per_second:11.1f} {window.result.p50_seconds * 1000:7.0f}"
            f" {window.result.p99_seconds * 1000:7.0f} {window.backlog_at_end:8}"
            f" {window.backlog_later:6} {len(window.oversold):9}"
            f" {window.created_per_server_cpu_second:14.1f}"
        )


def read_targets(figures: list[ReadFigure]) -> Iterator[Target]:
    rate = {figure.name: figure.result.requests_per_second for figure in figures}

    def ratio(name: str) -> float:
        return rate[name] / rate[CEILING]

    yield Target(
        "read uncached vs ceiling", "≥ 0.03", f"{ratio(UNCACHED):.4f}", ratio(UNCACHED) >= 0.03
    )
    yield Target(
        "read uncached vs stock Strawberry",
        f"≥ {rate[STOCK]:.0f} req/s",
        f"{rate[UNCACHED]:.0f} req/s",
        rate[UNCACHED] >= rate[STOCK],
    )
    yield Target("read cached vs ceiling", "≥ 0.25", f"{ratio(CACHED):.4f}", ratio(CACHED) >= 0.25)
    yield Target(
        "read persisted (APQ) vs ceiling",
        "≥ 0.15 (if step 3)",
        f"{ratio(PERSISTED):.4f}",
        ratio(PERSISTED) >= 0.15,
    )


def write_targets(figures: list[WriteFigure]) -> Iterator[Target]:
    for figure in figures:
        name, window, short = figure.database, figure.window, figure.short
        yield Target(
            f"{name}: created", "≥ 300/s", f"{window.created_per_second:.1f}/s",
            window.created_per_second >= 300,
        )  # fmt: skip
        yield Target(
            f"{name}: fulfilled", "≥ 300/s", f"{window.fulfilled_per_second:.1f}/s",
            window.fulfilled_per_second >= 300,
        )  # fmt: skip
        # Bounded: at the end of the window at most one second's orders still wait.
        yield Target(
            f"{name}: backlog bounded",
            f"≤ {window.created_per_second:.0f} (1 s of orders)",
            f"{window.backlog_at_end}",
            window.backlog_at_end <= window.created_per_second,
        )
        yield Target(
            f"{name}: no oversell",
            "0 oversold; short stock exact",
            f"{len(window.oversold)} of {len(window.batches)} batches;"
            f" short {short.fulfilled} fulfilled, {short.waiting} waiting",
            not window.oversold and short.held,
        )
        failed = window.result.failed + window.result.non_2xx
        yield Target(f"{name}: failed creates", "0", f"{failed}", failed == 0)


def print_targets(targets: list[Target]) -> None:
    width = max(len(target.what) for target in targets)
    goal_width = max(len(target.goal) for target in targets)
    print(f"\n{'target (issue 10)':{width}}  {'goal':{goal_width}}  figure")
    for target in targets:
        mark = "✅" if target.met else "❌"
        print(f"{target.what:{width}}  {target.goal:{goal_width}}  {mark} {target.figure}")


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (5 min {five:.2f})"


def machine_busy_seconds() -> float:
    """CPU seconds all processes have used since boot (all cores)."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, stat.readline().split()[1:9]
        )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def our_busy_seconds() -> float:
    """CPU seconds of this process and of the children it has waited for (every server and
    wrk run it started; PostgreSQL's backends are not among them)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


async def main(options: argparse.Namespace) -> None:
    wrk.require_wrk()
    load_at_start = os.getloadavg()[0]
    print(f"load average at start: {load_average()} on {os.cpu_count()} CPUs", flush=True)
    started_at, machine_before, ours_before = (
        time.monotonic(),
        machine_busy_seconds(),
        our_busy_seconds(),
    )
    databases = ["sqlite", "postgresql"] if options.database == "both" else [options.database]
    reads = await run_reads(options.duration) if options.only != "writes" else []
    warm_up = 1 if options.quick else 2
    writes = (
        await run_writes(databases, options.write_duration, warm_up)
        if options.only != "reads"
        else []
    )
    if reads:
        print_reads(reads)
    if writes:
        print_writes(writes)
    print_targets([*(read_targets(reads) if reads else ()), *write_targets(writes)])
    others = (machine_busy_seconds() - machine_before - (our_busy_seconds() - ours_before)) / (
        time.monotonic() - started_at
    )
    print(
        f"\nload average at start {load_at_start:.2f}, at end {load_average()} (the end figure"
        " counts this run's own server and wrk); other processes, PostgreSQL included, used"
        f" {others:.2f} of {os.cpu_count()} CPUs on average during the run"
    )
    if load_at_start > SHARED_LOAD or others > SHARED_OTHERS:
        print(
            "the machine was shared: other processes took CPU time, so compare the ratios of"
            " this run rather than its absolute figures"
        )


if __name__ == "__main__":
    asyncio.run(main(arguments()))
