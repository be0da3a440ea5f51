"""Per-key rate limits: a token bucket in memory (one process) or in Redis (shared)."""

import math
import time
from collections.abc import Callable
from typing import Protocol

# Atomic token bucket; Redis's own clock keeps every process on one time line.
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local retry_after = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  retry_after = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(retry_after)
"""


class RateLimiter(Protocol):
    async def take(self, key: str) -> float:
        """Spend one request of `key`'s budget: 0 if allowed, else seconds until one is."""
        ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(self, key: str) -> float:
        now = self.clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate

    async def close(self) -> None:
        self._buckets.clear()


class RedisRateLimiter:
    def __init__(self, url: str, rate: float, burst: int, prefix: str = "cg:rate:") -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._script = self._redis.register_script(_BUCKET_SCRIPT)
        self.rate = rate
        self.burst = burst
        self.prefix = prefix

    async def take(self, key: str) -> float:
        result = await self._script(keys=[self.prefix + key], args=[self.rate, self.burst])
        return float(result)

    async def close(self) -> None:
        await self._redis.aclose()


class NoRateLimit:
    async def take(self, key: str) -> float:
        return 0.0

    async def close(self) -> None:
        return None


def create_rate_limiter(redis_url: str | None, rate: float, burst: int) -> RateLimiter:
    if rate <= 0:
        return NoRateLimit()
    if redis_url:
        return RedisRateLimiter(redis_url, rate, burst)
    return MemoryRateLimiter(rate, burst)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
