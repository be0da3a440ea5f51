"""Process settings, read from the environment with the `CG_` prefix."""

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from app.db import PoolSize

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./carbon-gateway.db"
# Only for local development: anything derived from it (certificate ids, demo keys) is
# guessable, so `serve` refuses it outside SQLite unless CG_DEBUG is on.
INSECURE_DEV_SECRET = "insecure-dev-secret-change-me"  # noqa: S105


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CG_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    # PostgreSQL connection pool of each process (app.db.PoolSize): kept open / extra at peaks.
    database_pool_size: int = Field(default=10, ge=1)
    database_max_overflow: int = Field(default=30, ge=0)
    secret_key: SecretStr = SecretStr(INSECURE_DEV_SECRET)
    run_worker: bool = True
    debug: bool = False
    allow_private_webhooks: bool = False
    log_level: str = "INFO"
    # Each API key's leaky bucket of query-cost points (app/graphql/cost.py): restored at
    # `rate_limit_per_second` points a second up to `rate_limit_burst`; a rate of 0 turns rate
    # limiting off. Shopify's standard figures.
    rate_limit_per_second: float = Field(default=50.0, ge=0)
    rate_limit_burst: int = Field(default=1_000, ge=1)
    # Largest request body accepted on /graphql (a 10,000-item customer order is ~1.5 MB).
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # Largest calculated cost of one operation (see app/graphql/cost.py); with rate limits on,
    # no more than the bucket holds either.
    max_query_cost: int = Field(default=1_000, ge=1)
    # graphql-transport-ws: the server pings each socket this often (0 turns pings off) and
    # closes it with 4408 when no pong comes back within the timeout. The legacy protocol gets
    # its one-way `ka` keep-alive at the same interval.
    ws_ping_interval_seconds: float = Field(default=15.0, ge=0)
    ws_pong_timeout_seconds: float = Field(default=10.0, gt=0)
    # How often a process checks the keys of its open WebSockets (one statement for all of
    # them) and closes those of revoked keys and suspended accounts with 4403.
    ws_access_check_seconds: float = Field(default=2.0, gt=0)
    # The response cache (app/graphql/response_cache.py): on by default; in memory, or in
    # Redis when CG_REDIS_URL is set (for `response_cache_ttl_seconds` at most). Either way
    # its entries total at most `response_cache_max_bytes`, and an answer over an eighth of
    # that is not stored.
    response_cache: bool = True
    # Compiled plans (app/graphql/plans.py): queries of a planned shape answered from rows
    # without graphql-core's per-field execution; off, every operation runs the executor.
    compiled_plans: bool = True
    response_cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    response_cache_ttl_seconds: int = Field(default=300, ge=1)
    # Every call to Redis (app/bounded_redis.py) made on a request's behalf — the response
    # cache, the rate limiter, persisted documents, the events' doorbell — gives up after
    # the timeout, unretried; after a failure that user leaves Redis alone for the pause
    # (answering uncached, limiting per process, answering PERSISTED_QUERY_NOT_FOUND,
    # polling the outbox), then one request tries it again.
    redis_timeout_seconds: float = Field(default=0.1, gt=0, le=10)
    redis_pause_seconds: float = Field(default=5.0, ge=0, le=3600)
    # Base of public links (certificates) when the API sits behind a proxy, e.g.
    # https://api.example.com; by default the requesting host is used.
    public_url: str | None = None
    # A trusted-documents manifest (app/graphql/persisted.py): only its operations run.
    trusted_documents: Path | None = None
    # Off: no introspection and no "Did you mean" suggestions in errors, so the schema
    # cannot be read or rebuilt by a client (GraphiQL's docs pane stays empty).
    introspection: bool = True
    # How long a client may take to send a request (see app/http_limits.py): its headers,
    # from the connection opening or the previous response; its body, from the headers.
    http_header_timeout: float = Field(default=10.0, gt=0)
    http_max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    http_body_timeout: float = Field(default=60.0, gt=0)
    # An idle keep-alive connection is closed after this many seconds.
    http_keep_alive_timeout: int = Field(default=5, ge=1)

    def public_link(self, request_base_url: str, path: str) -> str:
        """An absolute public URL: under CG_PUBLIC_URL if set, else the requesting host."""
        return (self.public_url or request_base_url).rstrip("/") + path

    @cached_property
    def database(self) -> URL:
        return make_url(self.database_url)

    @property
    def database_pool(self) -> PoolSize:
        return PoolSize(self.database_pool_size, self.database_max_overflow)

    @property
    def is_sqlite(self) -> bool:
        return self.database.get_backend_name() == "sqlite"

    @property
    def uses_insecure_secret(self) -> bool:
        return self.secret_key.get_secret_value() == INSECURE_DEV_SECRET
