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


@dataclass
class Context:
    db: Database
    settings: Settings
    principal: Principal | None
    loaders: DataLoaders
    request: Request | None = None
    response: Any = None

    def require_principal(self) -> Principal:
        """The authenticated principal; HTTP requests never get this far without one."""
        if self.principal is None:
            raise Forbidden("Authentication required.")
        return self.principal


Info = StrawberryInfo[Context, None]
