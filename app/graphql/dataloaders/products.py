"""Catalog products by id."""

import uuid
from collections.abc import Sequence

from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.service import Principal
from app.emissions.models import Product
from app.emissions.products import products_of
from app.graphql.dataloaders.scoped import ScopedLoader


class ProductLoader(ScopedLoader[Product]):
    async def fetch(
        self, session: AsyncSession, principal: Principal, ids: list[uuid.UUID]
    ) -> Sequence[Product]:
        return (await session.exec(products_of(principal).where(col(Product.id).in_(ids)))).all()
