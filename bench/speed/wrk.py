"""wrk, the out-of-process HTTP load generator: its Lua scripts and its `--latency` report."""

import asyncio
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

WRK = "/usr/bin/wrk"
LOAD_CPU = "1"  # the server under test has CPU 0 to itself
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"([\d.]+)(us|ms|s|m|h)")


@dataclass(frozen=True)
class WrkResult:
    requests: int
    requests_per_second: float
    p50_seconds: float
    p99_seconds: float
    non_2xx: int
    socket_errors: int
    # Responses the script's `response` hook counted as failed (200 without errors, else).
    failed: int

    def trouble(self) -> str:
        """The counts that are not zero, as `; non-2xx N; failed N; socket errors N`."""
        counts = {
            "non-2xx": self.non_2xx,
            "failed": self.failed,
            "socket errors": self.socket_errors,
        }
        return "".join(f"; {name} {count}" for name, count in counts.items() if count)


def _seconds(text: str) -> float:
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


def parse_report(output: str) -> WrkResult:
    """The figures of wrk's `--latency` report (and the `failed N` line our scripts print)."""

    def number(pattern: str, default: str | None = None) -> str:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            if default is None:
                raise ValueError(f"no {pattern!r} in wrk output:\n{output}")
            return default
        return match[1]

    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests=int(number(r"^\s*(\d+) requests in ")),
        requests_per_second=float(number(r"^Requests/sec:\s+([\d.]+)")),
        p50_seconds=_seconds(number(r"^\s+50%\s+(\S+)")),
        p99_seconds=_seconds(number(r"^\s+99%\s+(\S+)")),
        non_2xx=int(number(r"^\s*Non-2xx or 3xx responses: (\d+)", "0")),
        socket_errors=sum(map(int, socket_errors.groups())) if socket_errors else 0,
        failed=int(number(r"^failed (\d+)", "0")),
    )


def _lua_string(text: str) -> str:
    """A Lua string literal: JSON's escapes of quotes, backslashes and newlines are Lua's
    too, but LuaJIT (wrk) has no \\uXXXX, so control characters are refused."""
    literal = json.dumps(text, ensure_ascii=False)
    if "\\u" in literal:
        raise ValueError(f"a control character in a wrk script string: {text!r}")
    return literal


def _headers_lua(headers: dict[str, str]) -> str:
    return "".join(
        f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}\n"
        for name, value in headers.items()
    )


_COUNT_FAILURES = """
failed = 0
threads = {}
setup = function(thread) table.insert(threads, thread) end
response = function(status, headers, body)
  if status ~= 200 or body:find('"errors"', 1, true) or not body:find(ok_marker, 1, true) then
    failed = failed + 1
  end
end
done = function(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("failed") end
  io.write("failed " .. total .. "\\n")
end
"""


def static_post_script(body: str, headers: dict[str, str]) -> str:
    """Every request POSTs the same body (reads: the response is checked before the run)."""
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {_lua_string(body)}\n"
        f"{_headers_lua({'Content-Type': 'application/json', **headers})}"
    )


def numbered_post_script(
    body_before: str, body_after: str, headers: dict[str, str], ok_marker: str
) -> str:
    """Every request POSTs `body_before .. N .. body_after` with N counting up per
    connection thread (an idempotency key per request), and counts the responses that are
    not 200, hold `"errors"` or lack `ok_marker` (e.g. `"userErrors":[]`)."""
    return (
        f"{_headers_lua({'Content-Type': 'application/json', **headers})}"
        f"local before = {_lua_string(body_before)}\n"
        f"local after = {_lua_string(body_after)}\n"
        f"ok_marker = {_lua_string(ok_marker)}\n"
        "local counter = 0\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        '  return wrk.format("POST", "/graphql", nil, before .. counter .. after)\n'
        "end\n"
        f"{_COUNT_FAILURES}"
    )


def require_wrk() -> None:
    if shutil.which(WRK) is None:
        raise SystemExit(f"{WRK} is missing: apt-get install -y wrk")


async def run(
    url: str, script: Path, seconds: float, connections: int, timeout_seconds: float = 10
) -> WrkResult:
    """One wrk run pinned to LOAD_CPU: one thread, `connections` connections."""
    process = await asyncio.create_subprocess_exec(
        "taskset",
        "-c",
        LOAD_CPU,
        WRK,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_seconds:g}s",
        "--latency",
        "-s",
        str(script),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{text}")
    return parse_report(text)
