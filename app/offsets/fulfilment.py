"""Fulfilment: match placed orders to credit batches, retire them and issue certificates.

Set-based: one transaction claims up to `CLAIM_BATCH` placed orders (oldest first; `SKIP
LOCKED` on PostgreSQL, so workers never wait on each other's claims), loads their lines once,
has inventory lock every batch their bundles draw on (in id order, so two workers never
deadlock) and plans each order's takes in memory, oldest order and oldest vintage first. An
order the stock cannot cover entirely takes nothing and is parked (`awaiting_inventory`)
until new stock arrives for its account and mode. Then, in bulk: one guarded decrement per
batch touched, the allocations with their serial ranges, the fulfilled orders with their
certificate ids, the parked flags and the outbox events — and one commit.
"""

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, inspect, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.accounts.models import Mode
from app.accounts.service import Principal
from app.catalog.models import CreditBatch
from app.certificates.ids import certificate_id
from app.db import Database, insert_rows, utcnow
from app.events.models import Event
from app.inventory import service as inventory
from app.offsets.models import Allocation, OffsetOrder, OrderLine, OrderState
from app.offsets.service import state_change_event

log = logging.getLogger(__name__)
MAX_RETRIES = 5
# Orders per transaction: large enough that commits and statements are shared by many
# orders, small enough that a SQLite write lock is held for a few tens of milliseconds.
CLAIM_BATCH = 200
ORDERS = cast(Table, inspect(OffsetOrder).local_table)


@dataclass(frozen=True)
class FulfilmentResult:
    fulfilled: int = 0
    parked: int = 0

    def __add__(self, other: "FulfilmentResult") -> "FulfilmentResult":
        return FulfilmentResult(self.fulfilled + other.fulfilled, self.parked + other.parked)


def _claimable() -> SelectOfScalar[OffsetOrder]:
    return select(OffsetOrder).where(
        OffsetOrder.state == OrderState.PLACED,
        col(OffsetOrder.awaiting_inventory).is_(False),
    )


async def claim_orders(session: AsyncSession, limit: int) -> Sequence[OffsetOrder]:
    """The oldest placed orders no other worker holds (PostgreSQL: SKIP LOCKED; SQLite has one
    writer at a time, which BEGIN IMMEDIATE already gives us)."""
    return (
        await session.exec(
            _claimable()
            .order_by(col(OffsetOrder.created_at), col(OffsetOrder.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()


async def has_claimable_orders(db: Database) -> bool:
    """A read-only look, so an idle worker never takes SQLite's write lock."""
    async with db.session() as session:
        return (await session.exec(_claimable().limit(1))).first() is not None


async def _lines_by_order(
    session: AsyncSession, orders: Sequence[OffsetOrder]
) -> dict[uuid.UUID, list[OrderLine]]:
    lines = (
        await session.exec(
            select(OrderLine)
            .where(col(OrderLine.order_id).in_([order.id for order in orders]))
            .order_by(col(OrderLine.order_id), col(OrderLine.position))
        )
    ).all()
    grouped: dict[uuid.UUID, list[OrderLine]] = {order.id: [] for order in orders}
    for line in lines:
        grouped[line.order_id].append(line)
    return grouped


def _allocation_row(order: OffsetOrder, take: inventory.Take) -> dict[str, object]:
    return {
        "id": uuid.uuid4(),
        "account_id": order.account_id,
        "mode": order.mode,
        "order_id": order.id,
        "bundle_id": take.bundle_id,
        "project_id": take.batch.project_id,
        "credit_batch_id": take.batch.id,
        "mass_grams": take.grams,
        "serial_start": take.serial_start,
        "serial_end": take.serial_end,
        "created_at": utcnow(),
    }


async def fulfil_claimed(
    session: AsyncSession, orders: Sequence[OffsetOrder], secret: str
) -> FulfilmentResult:
    """Fulfil or park claimed orders inside the caller's transaction."""
    for order in orders:
        # Detached: the bulk UPDATE below writes them, not the unit of work at commit.
        session.expunge(order)
    lines = await _lines_by_order(session, orders)
    stock = await inventory.lock_stock(
        session, {line.bundle_id for order_lines in lines.values() for line in order_lines}
    )
    fulfilled: list[OffsetOrder] = []
    parked: list[uuid.UUID] = []
    allocations: list[dict[str, object]] = []
    for order in orders:
        needs = [(line.bundle_id, line.mass_grams) for line in lines[order.id]]
        takes = stock.take(order.account_id, order.mode, needs)
        if takes is None:
            parked.append(order.id)
            continue
        fulfilled.append(order)
        allocations.extend(_allocation_row(order, take) for take in takes)
    await stock.apply(session)
    await insert_rows(session, Allocation, allocations)
    if fulfilled:
        now = utcnow()
        for order in fulfilled:
            order.state = OrderState.FULFILLED
            order.fulfilled_at = now
            order.certificate_id = certificate_id(order.id, secret)
        await session.exec(
            update(ORDERS)  # the Core table: one executemany, without ORM bulk-update rules
            .where(ORDERS.c.id == bindparam("order_id"))
            .values(
                state=OrderState.FULFILLED,
                fulfilled_at=now,
                certificate_id=bindparam("certificate"),
            ),
            params=[{"order_id": o.id, "certificate": o.certificate_id} for o in fulfilled],
        )
        await insert_rows(
            session, Event, [state_change_event(order, OrderState.PLACED) for order in fulfilled]
        )
    if parked:
        await session.exec(
            update(OffsetOrder)
            .where(col(OffsetOrder.id).in_(parked))
            .values(awaiting_inventory=True)
            .execution_options(synchronize_session=False)
        )
        log.info("%d orders wait for inventory", len(parked))
    return FulfilmentResult(len(fulfilled), len(parked))


async def fulfil_next_batch(
    db: Database, secret: str, limit: int = CLAIM_BATCH
) -> FulfilmentResult | None:
    """Claim and fulfil up to `limit` orders in one transaction; None when the queue is empty.
    Deadlocks, serialization failures and stock that changed under us are retried."""
    for attempt in range(MAX_RETRIES):
        try:
            async with db.transaction() as session:
                orders = await claim_orders(session, limit)
                if not orders:
                    return None
                return await fulfil_claimed(session, orders, secret)
        except (DBAPIError, inventory.StockChanged) as error:
            if not _is_retryable(error) or attempt == MAX_RETRIES - 1:
                raise
            log.warning("retrying fulfilment after %s", _reason(error))
    return None


def _is_retryable(error: Exception) -> bool:
    if isinstance(error, inventory.StockChanged):
        return True
    orig = getattr(error, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in ("40001", "40P01")  # serialization failure, deadlock


def _reason(error: Exception) -> str:
    return type(getattr(error, "orig", None) or error).__name__


async def fulfil_pending(
    db: Database,
    secret: str,
    limit: int = 1000,
    on_fulfilled: Callable[[], None] | None = None,
) -> FulfilmentResult:
    """Drain the queue: fulfil or park claimable orders, at most `limit` of them;
    `on_fulfilled` is called after each transaction that fulfilled some."""
    total = FulfilmentResult()
    if not await has_claimable_orders(db):
        return total
    while (handled := total.fulfilled + total.parked) < limit:
        result = await fulfil_next_batch(db, secret, min(CLAIM_BATCH, limit - handled))
        if result is None:
            break
        if result.fulfilled and on_fulfilled is not None:
            on_fulfilled()
        total += result
    return total


async def release_parked_orders(session: AsyncSession, account_id: uuid.UUID, mode: Mode) -> int:
    """New stock arrived: let the worker retry this account's and mode's parked orders."""
    result = await session.exec(
        update(OffsetOrder)
        .where(
            col(OffsetOrder.account_id) == account_id,
            col(OffsetOrder.mode) == mode,
            col(OffsetOrder.state) == OrderState.PLACED,
            col(OffsetOrder.awaiting_inventory).is_(True),
        )
        .values(awaiting_inventory=False)
    )
    return int(result.rowcount or 0)


async def receive_stock(
    session: AsyncSession,
    principal: Principal,
    *,
    project_id: uuid.UUID,
    vintage: int,
    serial_prefix: str,
    quantity_grams: int,
) -> CreditBatch:
    """New stock (inventory's `add_stock`) and, atomically, another try for the orders of
    this account and mode that were parked for lack of it."""
    batch = await inventory.add_stock(
        session,
        principal,
        project_id=project_id,
        vintage=vintage,
        serial_prefix=serial_prefix,
        quantity_grams=quantity_grams,
    )
    await release_parked_orders(session, principal.account_id, principal.mode)
    return batch
