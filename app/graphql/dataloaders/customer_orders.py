"""Customer orders by id."""

import uuid
from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.service import Principal
from app.emissions.customer_orders import customer_orders_by_id
from app.emissions.models import CustomerOrder
from app.graphql.dataloaders.scoped import ScopedLoader


class CustomerOrderLoader(ScopedLoader[CustomerOrder]):
    async def fetch(
        self, session: AsyncSession, principal: Principal, ids: list[uuid.UUID]
    ) -> Sequence[CustomerOrder]:
        return await customer_orders_by_id(session, principal, ids)
