"""Redis calls that can neither hang nor fail a request: each bounded in time, none retried,
and a Redis that fails left alone for a while (a circuit breaker).

The response cache, the rate limiter and the persisted documents keep working without Redis
(a miss, a bucket in this process, a document not found), so a Redis that is down or hung
must cost a request at most one timeout, and only the first request of each pause.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class RedisUnavailable(Exception):
    """A call was not made (the breaker is open) or failed or took longer than its bound."""


class CircuitBreaker:
    """Stops calling a failing service for `pause_seconds` after a failure, then lets one call
    through to try again (the others keep skipping until it ends): a hung Redis costs one
    timeout per pause, not one per request.

    Written here rather than taken from a library such as purgatory: what is needed is one
    failure to open and one probe at a time, and purgatory's per-call context manager costs
    ~1.5 µs of CPU where this check costs 0.02 µs, on the cache-hit path, where a whole hit
    costs a few hundred µs."""

    def __init__(self, pause_seconds: float) -> None:
        self.pause_seconds = pause_seconds
        self._open_until = 0.0  # 0: closed, calls go through; else when the next may probe

    @property
    def closed(self) -> bool:
        return self._open_until == 0.0

    def allows_a_call(self) -> bool:
        if self._open_until == 0.0:
            return True
        now = time.monotonic()
        if now < self._open_until:
            return False
        self._open_until = now + self.pause_seconds  # this call probes; the others skip
        return True

    def succeeded(self) -> None:
        self._open_until = 0.0

    def failed(self) -> None:
        self._open_until = time.monotonic() + self.pause_seconds


def bounded_client(url: str, timeout_seconds: float, **options: Any) -> Any:
    """A redis-py client whose connects and reads give up after `timeout_seconds`, with no
    retries: a retry would only double the wait on a Redis that is not answering."""
    import redis.asyncio as redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 0),
        **options,
    )


class BoundedCalls:
    """Runs one user's Redis commands (`purpose`, for the log) each within `timeout_seconds`,
    behind a CircuitBreaker of `pause_seconds`. A failure raises RedisUnavailable, for the
    caller's fallback; the first failure of a pause and the recovery are logged, not each
    skipped call."""

    def __init__(self, purpose: str, *, timeout_seconds: float, pause_seconds: float) -> None:
        import redis.asyncio as redis

        self.purpose = purpose
        self.timeout_seconds = timeout_seconds
        self.breaker = CircuitBreaker(pause_seconds)
        self._errors = (redis.RedisError, OSError, TimeoutError)

    async def run(self, name: str, command: Callable[[], Awaitable[T]]) -> T:
        """`command`'s answer. The overall timeout also bounds what the socket timeouts do
        not: a connection's handshake after its connect, a script load."""
        if not self.breaker.allows_a_call():
            raise RedisUnavailable(f"{self.purpose}: Redis paused after a failure")
        try:
            async with asyncio.timeout(self.timeout_seconds):
                result = await command()
        except self._errors as error:
            if self.breaker.closed:
                log.warning(
                    "%s: Redis %s failed; without Redis for %s s: %r",
                    self.purpose,
                    name,
                    self.breaker.pause_seconds,
                    error,
                )
            self.breaker.failed()
            raise RedisUnavailable(f"{self.purpose}: Redis {name} failed") from error
        if not self.breaker.closed:
            log.warning("%s: Redis answers again", self.purpose)
        self.breaker.succeeded()
        return result
