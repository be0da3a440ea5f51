"""The typed per-operation context every resolver receives."""

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from starlette.requests import HTTPConnection
from strawberry.types import Info as StrawberryInfo

from app.accounts.rate_limits import RateLimiter, ThrottleStatus
from app.accounts.service import Principal
from app.background import Background
from app.config import Settings
from app.db import Database
from app.errors import Forbidden
from app.graphql.dataloaders import DataLoaders
from app.graphql.persisted import PersistedOperations
from app.graphql.reads import RequestReads
from app.graphql.response_cache import ResponseCache


@dataclass
class Context:
    db: Database
    settings: Settings
    principal: Principal | None
    # Every read of the operation's resolvers and loaders goes through `reads`.
    reads: RequestReads
    loaders: DataLoaders
    request: HTTPConnection | None = None
    response: Any = None
    background: Background | None = None
    # Set by Strawberry from a WebSocket's connection_init payload.
    connection_params: dict[str, Any] | None = None
    # The key's bucket of cost points (app/graphql/cost.py takes from it and refunds it) and
    # its state after this request, which the HTTP layer turns into RateLimit headers.
    rate_limiter: RateLimiter | None = None
    rate_limit_key: str | None = None
    throttle: ThrottleStatus | None = None
    # APQ and trusted documents; the schema checks WebSocket operations against it too.
    persisted_operations: PersistedOperations | None = None
    # Set on HTTP requests only: the schema's ResponseCaching extension serves queries from it,
    # under the key the HTTP layer already read when it looked the request up.
    response_cache: ResponseCache | None = None
    response_cache_key: str | None = None

    def signal_change(self) -> None:
        """Orders or stock changed: let this process's worker and relay look now."""
        if self.background is not None:
            self.background.wake()

    def public_url(self, path: str) -> str:
        """An absolute URL for a public page: CG_PUBLIC_URL if set, else this request's host."""
        return self._public_base + path

    @cached_property
    def _public_base(self) -> str:
        # Once per operation, not per certificate: Starlette rebuilds base_url on every read.
        return self.settings.public_link(str(self.request.base_url) if self.request else "", "")

    def require_principal(self) -> Principal:
        """The authenticated principal; HTTP requests never get this far without one."""
        if self.principal is None:
            raise Forbidden("Authentication required.")
        return self.principal


Info = StrawberryInfo[Context, None]
