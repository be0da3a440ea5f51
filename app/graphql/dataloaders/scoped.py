"""Base for loaders that fetch rows by id within the principal's account and mode."""

import uuid
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from aiodataloader import DataLoader
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.service import Principal
from app.db import Database

Row = TypeVar("Row")


class ScopedLoader(DataLoader, Generic[Row]):
    """Loads rows by id; ids outside the principal's scope come back as None, like unknown ids."""

    def __init__(self, db: Database, principal: Principal | None) -> None:
        super().__init__()
        self.db = db
        self.principal = principal

    async def batch_load_fn(self, ids: Sequence[uuid.UUID]) -> list[Row | None]:
        if self.principal is None:
            return [None] * len(ids)
        async with self.db.session() as session:
            rows = await self.fetch(session, self.principal, list(set(ids)))
        by_id: dict[Any, Row] = {row.id: row for row in rows}  # type: ignore[attr-defined]
        return [by_id.get(row_id) for row_id in ids]

    async def fetch(
        self, session: AsyncSession, principal: Principal, ids: list[uuid.UUID]
    ) -> Sequence[Row]:
        raise NotImplementedError
