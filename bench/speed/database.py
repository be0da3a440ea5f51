"""What a speed run reads from the database directly: orders per state, and the stock check
that proves nothing was oversold."""

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_ORDERS_BY_STATE = text(
    "SELECT state, count(*) FROM offset_order"
    " WHERE coalesce(idempotency_key, '') LIKE :key_pattern"
    " AND (:except_pattern = '' OR coalesce(idempotency_key, '') NOT LIKE :except_pattern)"
    " GROUP BY state"
)
# Every batch with what its allocations took: remaining only goes down as allocations are
# written, so allocated + remaining == quantity, and neither may pass the other.
_BATCH_STOCK = text(
    "SELECT b.serial_prefix, b.quantity_grams, b.remaining_grams,"
    " coalesce((SELECT sum(a.mass_grams) FROM allocation a WHERE a.credit_batch_id = b.id), 0)"
    " FROM credit_batch b"
)


@dataclass(frozen=True)
class BatchStock:
    serial_prefix: str
    quantity_grams: int
    remaining_grams: int
    allocated_grams: int

    @property
    def oversold(self) -> bool:
        return (
            self.remaining_grams < 0
            or self.allocated_grams > self.quantity_grams
            or self.allocated_grams + self.remaining_grams != self.quantity_grams
        )


class BenchDatabase:
    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = create_async_engine(url)

    async def orders_by_state(
        self, key_prefix: str = "", except_prefix: str | None = None
    ) -> Counter[str]:
        """Orders per state, of those whose idempotency key starts with `key_prefix` and not
        with `except_prefix`."""
        patterns = {
            "key_pattern": f"{key_prefix}%",
            "except_pattern": f"{except_prefix}%" if except_prefix else "",
        }
        async with self.engine.connect() as connection:
            rows = await connection.execute(_ORDERS_BY_STATE, patterns)
            return Counter({state: count for state, count in rows})

    async def batch_stock(self) -> list[BatchStock]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(_BATCH_STOCK)
            # PostgreSQL's sum() of a bigint is a numeric: Decimal, back to an int here.
            return [BatchStock(prefix, *map(int, grams)) for prefix, *grams in rows]

    async def dispose(self) -> None:
        await self.engine.dispose()
