"""Subaccounts by id."""

import uuid
from collections.abc import Sequence

from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.models import Subaccount
from app.accounts.service import Principal, subaccounts_of
from app.graphql.dataloaders.scoped import ScopedLoader


class SubaccountLoader(ScopedLoader[Subaccount]):
    async def fetch(
        self, session: AsyncSession, principal: Principal, ids: list[uuid.UUID]
    ) -> Sequence[Subaccount]:
        statement = subaccounts_of(principal).where(col(Subaccount.id).in_(ids))
        return (await session.exec(statement)).all()
