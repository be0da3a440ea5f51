"""The items of customer orders, by order id: one query for every order of a page."""

import uuid
from collections.abc import Sequence

from aiodataloader import DataLoader

from app.accounts.service import Principal
from app.db import Database
from app.emissions.customer_orders import items_of_orders
from app.emissions.models import CustomerOrderItem


class CustomerOrderItemsLoader(DataLoader):
    def __init__(self, db: Database, principal: Principal | None) -> None:
        super().__init__()
        self.db = db
        self.principal = principal

    async def batch_load_fn(self, order_ids: Sequence[uuid.UUID]) -> list[list[CustomerOrderItem]]:
        if self.principal is None:
            return [[] for _ in order_ids]
        async with self.db.session() as session:
            items = await items_of_orders(session, self.principal, list(set(order_ids)))
        return [items.get(order_id, []) for order_id in order_ids]
