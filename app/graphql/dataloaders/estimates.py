"""Estimates by id (e.g. the estimate of a customer order)."""

import uuid
from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.service import Principal
from app.emissions.models import Estimate
from app.emissions.service import estimates_by_id
from app.graphql.dataloaders.scoped import ScopedLoader


class EstimateLoader(ScopedLoader[Estimate]):
    async def fetch(
        self, session: AsyncSession, principal: Principal, ids: list[uuid.UUID]
    ) -> Sequence[Estimate]:
        return await estimates_by_id(session, principal, ids)
