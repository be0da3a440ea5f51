"""Per-key rate limits: a leaky bucket of cost points, in memory (one process) or in Redis (shared).

Each API key has a bucket holding at most `maximum` points that refills at `restore_rate`
points per second. A request takes its requested cost up front (refused, with nothing taken,
when the bucket holds less) and gets back what it did not use once it has run. This is
Shopify's "calculated query cost" model; the points themselves are computed elsewhere.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from app.bounded_redis import BoundedCalls, RedisUnavailable, bounded_client

# Atomic take-or-refund on one bucket; Redis's own clock keeps every process on one time line.
# ARGV: restore rate, maximum, points, mode ("take" refuses when short; "refund" adds back).
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local maximum = tonumber(ARGV[2])
local points = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'available', 'at')
local available = tonumber(state[1]) or maximum
local at = tonumber(state[2]) or now
available = math.min(maximum, available + math.max(0, now - at) * rate)
local retry_after = 0
if ARGV[4] == 'refund' then
  available = math.min(maximum, available + points)
elseif available >= points then
  available = available - points
else
  retry_after = (points - available) / rate
end
redis.call('HSET', KEYS[1], 'available', tostring(available), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(maximum / rate) + 1)
return {tostring(available), tostring(retry_after)}
"""


@dataclass(frozen=True)
class ThrottleStatus:
    """A bucket after one take or refund; `retry_after` > 0 means the take was refused."""

    maximum_available: float
    currently_available: float
    restore_rate: float
    retry_after: float = 0.0

    @property
    def refused(self) -> bool:
        return self.retry_after > 0

    @property
    def seconds_until_full(self) -> float:
        return (self.maximum_available - self.currently_available) / self.restore_rate


class RateLimiter(Protocol):
    async def take(self, key: str, points: int) -> ThrottleStatus | None:
        """Take `points` from `key`'s bucket if it holds them (else take nothing and say when
        it will); None when rate limiting is off."""
        ...

    async def refund(self, key: str, points: int) -> ThrottleStatus | None:
        """Give back points a request took but did not use (never above the maximum); a
        negative refund takes what it used beyond them, below zero if need be (a debt the
        key's next requests wait out)."""
        ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    def __init__(
        self, rate: float, maximum: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.maximum = maximum
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def _available_now(self, key: str) -> tuple[float, float]:
        now = self.clock()
        available, at = self._buckets.get(key, (float(self.maximum), now))
        return min(float(self.maximum), available + (now - at) * self.rate), now

    def _status(self, available: float, retry_after: float = 0.0) -> ThrottleStatus:
        return ThrottleStatus(self.maximum, available, self.rate, retry_after)

    async def take(self, key: str, points: int) -> ThrottleStatus:
        # No await between reading and writing the bucket: atomic within the event loop.
        available, now = self._available_now(key)
        if available >= points:
            self._buckets[key] = (available - points, now)
            return self._status(available - points)
        self._buckets[key] = (available, now)
        return self._status(available, (points - available) / self.rate)

    async def refund(self, key: str, points: int) -> ThrottleStatus:
        available, now = self._available_now(key)
        available = min(float(self.maximum), available + points)
        self._buckets[key] = (available, now)
        return self._status(available)

    async def close(self) -> None:
        self._buckets.clear()


class RedisRateLimiter:
    """One bucket per key shared by every process using the Redis. While Redis fails or takes
    longer than `timeout_seconds` (app/bounded_redis.py), and for `pause_seconds` after,
    each process limits with a bucket of its own (a MemoryRateLimiter of the same rate):
    the limit still holds per process, and no request waits on Redis or fails for it."""

    def __init__(
        self,
        url: str,
        rate: float,
        maximum: int,
        prefix: str = "cg:cost:",
        *,
        timeout_seconds: float = 0.1,
        pause_seconds: float = 5.0,
    ) -> None:
        self._redis = bounded_client(url, timeout_seconds)
        self._script = self._redis.register_script(_BUCKET_SCRIPT)
        self._calls = BoundedCalls(
            "rate limits", timeout_seconds=timeout_seconds, pause_seconds=pause_seconds
        )
        self.fallback = MemoryRateLimiter(rate, maximum)
        self.rate = rate
        self.maximum = maximum
        self.prefix = prefix

    async def _run(self, key: str, points: int, mode: str) -> ThrottleStatus:
        available, retry_after = await self._calls.run(
            mode,
            lambda: self._script(
                keys=[self.prefix + key], args=[self.rate, self.maximum, points, mode]
            ),
        )
        return ThrottleStatus(self.maximum, float(available), self.rate, float(retry_after))

    async def take(self, key: str, points: int) -> ThrottleStatus:
        try:
            return await self._run(key, points, "take")
        except RedisUnavailable:
            return await self.fallback.take(key, points)

    async def refund(self, key: str, points: int) -> ThrottleStatus:
        try:
            return await self._run(key, points, "refund")
        except RedisUnavailable:
            return await self.fallback.refund(key, points)

    async def close(self) -> None:
        await self.fallback.close()
        await self._redis.aclose()


class NoRateLimit:
    async def take(self, key: str, points: int) -> None:
        return None

    async def refund(self, key: str, points: int) -> None:
        return None

    async def close(self) -> None:
        return None


def create_rate_limiter(
    redis_url: str | None,
    rate: float,
    maximum: int,
    *,
    redis_timeout_seconds: float = 0.1,
    redis_pause_seconds: float = 5.0,
) -> RateLimiter:
    if rate <= 0:
        return NoRateLimit()
    if redis_url:
        return RedisRateLimiter(
            redis_url,
            rate,
            maximum,
            timeout_seconds=redis_timeout_seconds,
            pause_seconds=redis_pause_seconds,
        )
    return MemoryRateLimiter(rate, maximum)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


POLICY_NAME = "cost"


def rate_limit_headers(status: ThrottleStatus) -> dict[str, str]:
    """The IETF fields (draft-ietf-httpapi-ratelimit-headers-10): the policy is the whole bucket
    restored over `w` seconds; `r` is what is left now and `t` the seconds until it is full.
    The quota is in cost points, for which the draft registers no `qu` unit, so none is sent."""
    window = math.ceil(status.maximum_available / status.restore_rate)
    remaining = max(0, math.floor(status.currently_available))  # in debt: none left
    reset = math.ceil(max(0.0, status.seconds_until_full))
    return {
        "RateLimit-Policy": f'"{POLICY_NAME}";q={int(status.maximum_available)};w={window}',
        "RateLimit": f'"{POLICY_NAME}";r={remaining};t={reset}',
    }
