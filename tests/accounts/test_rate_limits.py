"""Buckets of cost points: in memory with a fake clock, and shared through a real Redis."""

import uuid

from app.accounts.rate_limits import (
    MemoryRateLimiter,
    RedisRateLimiter,
    ThrottleStatus,
    rate_limit_headers,
    retry_after_header,
)


async def test_memory_bucket_takes_points_up_front_refunds_and_restores_at_its_rate() -> None:
    now = [100.0]
    limiter = MemoryRateLimiter(rate=2.0, maximum=10, clock=lambda: now[0])
    taken = await limiter.take("k", 8)
    assert taken == ThrottleStatus(10, 2.0, 2.0)
    refused = await limiter.take("k", 5)  # nothing is taken when the bucket holds too little
    assert refused == ThrottleStatus(10, 2.0, 2.0, retry_after=1.5)  # 3 points at 2 a second
    assert refused.refused
    assert await limiter.refund("k", 6) == ThrottleStatus(10, 8.0, 2.0)
    assert (await limiter.take("other", 10)).currently_available == 0  # buckets are per key
    now[0] += 0.5
    assert (await limiter.take("k", 9)).currently_available == 0.0
    now[0] += 100
    assert await limiter.refund("k", 50) == ThrottleStatus(10, 10.0, 2.0)  # never above maximum


def test_the_ietf_headers_describe_the_bucket_in_points() -> None:
    assert rate_limit_headers(ThrottleStatus(1000, 962.5, 50.0)) == {
        "RateLimit-Policy": '"cost";q=1000;w=20',
        "RateLimit": '"cost";r=962;t=1',
    }


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.2) == "2"


async def test_redis_bucket_is_shared_by_every_process(redis_url: str) -> None:
    prefix = f"cg:test:{uuid.uuid4().hex}:"
    first = RedisRateLimiter(redis_url, rate=0.5, maximum=30, prefix=prefix)
    second = RedisRateLimiter(redis_url, rate=0.5, maximum=30, prefix=prefix)
    try:
        assert not (await first.take("key", 20)).refused
        refused = await second.take("key", 20)  # the other process sees the same bucket
        assert refused.refused
        assert 9.9 < refused.retry_after <= 20.0  # 10 points short at 0.5 a second
        refunded = await second.refund("key", 15)
        assert 25 <= refunded.currently_available < 26
        assert not (await first.take("key", 25)).refused
        assert (await first.take("another-key", 30)).currently_available == 0
    finally:
        await first.close()
        await second.close()
