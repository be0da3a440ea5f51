"""Token buckets: in memory with a fake clock, and shared through a real Redis."""

import os
import uuid

import pytest
import redis

from app.accounts.rate_limits import MemoryRateLimiter, RedisRateLimiter, retry_after_header


async def test_memory_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    now = [100.0]
    limiter = MemoryRateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [await limiter.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await limiter.take("k") == pytest.approx(0.5)  # one token takes 1/rate seconds
    assert await limiter.take("other") == 0.0  # buckets are per key
    now[0] += 0.5
    assert await limiter.take("k") == 0.0
    assert await limiter.take("k") > 0
    now[0] += 100
    assert [await limiter.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]  # never above burst
    assert await limiter.take("k") > 0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.2) == "2"


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {url} is unreachable: {error} (required under CI=true)")
        pytest.skip(f"Redis at {url} is unreachable: {error}")
    return url


async def test_redis_bucket_is_shared_by_every_process(redis_url: str) -> None:
    prefix = f"cg:test:{uuid.uuid4().hex}:"
    first = RedisRateLimiter(redis_url, rate=0.5, burst=3, prefix=prefix)
    second = RedisRateLimiter(redis_url, rate=0.5, burst=3, prefix=prefix)
    try:
        spent = [await first.take("key"), await second.take("key"), await first.take("key")]
        assert spent == [0.0, 0.0, 0.0]
        retry = await second.take("key")
        assert 0 < retry <= 2.0
        assert await first.take("another-key") == 0.0
    finally:
        await first.close()
        await second.close()
