"""The typed per-operation context every resolver receives."""

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from strawberry.types import Info as StrawberryInfo

from app.accounts.service import Principal
from app.config import Settings
from app.db import Database
from app.errors import Forbidden
from app.graphql.dataloaders import DataLoaders
from app.offsets.worker import FulfilmentWorker


@dataclass
class Context:
    db: Database
    settings: Settings
    principal: Principal | None
    loaders: DataLoaders
    request: Request | None = None
    response: Any = None
    worker: FulfilmentWorker | None = None

    def wake_worker(self) -> None:
        """Orders or stock changed: let an in-process worker look now rather than at its poll."""
        if self.worker is not None:
            self.worker.wake()

    def public_url(self, path: str) -> str:
        """An absolute URL for a public page: CG_PUBLIC_URL if set, else this request's host."""
        return self.settings.public_link(str(self.request.base_url) if self.request else "", path)

    def require_principal(self) -> Principal:
        """The authenticated principal; HTTP requests never get this far without one."""
        if self.principal is None:
            raise Forbidden("Authentication required.")
        return self.principal


Info = StrawberryInfo[Context, None]
