"""Fulfilment: match placed orders to credit batches, retire them and issue certificates.

One order is fulfilled in one transaction: claim it, lock the batches it may draw on in id
order (so two workers never deadlock), take from the oldest vintages first with a guarded
UPDATE, record allocations with serial ranges, issue the certificate id and move the order
to FULFILLED with its event. Without enough stock nothing is taken and the order is parked
(`awaiting_inventory`) until new stock arrives for its account and mode.
"""

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.accounts.models import Mode
from app.accounts.service import Principal
from app.catalog import service as catalog
from app.catalog.models import BundleProject, CreditBatch
from app.certificates.ids import certificate_id
from app.db import Database, utcnow
from app.offsets.models import Allocation, OffsetOrder, OrderLine, OrderState
from app.offsets.service import record_state_change

log = logging.getLogger(__name__)
MAX_DEADLOCK_RETRIES = 5


class InsufficientInventory(Exception):
    pass


@dataclass(frozen=True)
class FulfilmentResult:
    fulfilled: int = 0
    parked: int = 0


def _claimable() -> SelectOfScalar[OffsetOrder]:
    return select(OffsetOrder).where(
        OffsetOrder.state == OrderState.PLACED,
        col(OffsetOrder.awaiting_inventory).is_(False),
    )


async def claim_next_order(session: AsyncSession) -> OffsetOrder | None:
    """The oldest placed order no other worker holds (PostgreSQL: SKIP LOCKED; SQLite has one
    writer at a time, which BEGIN IMMEDIATE already gives us)."""
    return (
        await session.exec(
            _claimable()
            .order_by(col(OffsetOrder.created_at), col(OffsetOrder.id))
            .limit(1)
            .with_for_update(skip_locked=True)
        )
    ).first()


async def has_claimable_orders(db: Database) -> bool:
    """A read-only look, so an idle worker never takes SQLite's write lock."""
    async with db.session() as session:
        return (await session.exec(_claimable().limit(1))).first() is not None


async def _lock_batches(
    session: AsyncSession, order: OffsetOrder, lines: list[OrderLine]
) -> dict[uuid.UUID, list[CreditBatch]]:
    """Each line's candidate batches, oldest vintage first, after locking them all in id order."""
    links = (
        await session.exec(
            select(BundleProject).where(
                col(BundleProject.bundle_id).in_([line.bundle_id for line in lines])
            )
        )
    ).all()
    project_ids = {link.project_id for link in links}
    batches = (
        await session.exec(
            select(CreditBatch)
            .where(
                col(CreditBatch.project_id).in_(project_ids),
                CreditBatch.account_id == order.account_id,
                CreditBatch.mode == order.mode,
                col(CreditBatch.remaining_grams) > 0,
            )
            .order_by(col(CreditBatch.id))
            .with_for_update()
        )
    ).all()
    by_vintage = sorted(batches, key=lambda b: (b.vintage, b.created_at, b.id))
    projects_by_bundle: dict[uuid.UUID, set[uuid.UUID]] = {}
    for link in links:
        projects_by_bundle.setdefault(link.bundle_id, set()).add(link.project_id)
    return {
        line.bundle_id: [
            b for b in by_vintage if b.project_id in projects_by_bundle.get(line.bundle_id, set())
        ]
        for line in lines
    }


async def _take(session: AsyncSession, batch: CreditBatch, grams: int) -> int | None:
    """Decrement a batch by `grams` if it still has them; the remaining grams after, or None.
    The WHERE guard and the table's CHECK make overselling impossible even without locks."""
    remaining = (
        await session.exec(
            update(CreditBatch)
            .where(col(CreditBatch.id) == batch.id, col(CreditBatch.remaining_grams) >= grams)
            .values(remaining_grams=col(CreditBatch.remaining_grams) - grams)
            .returning(col(CreditBatch.remaining_grams))
        )
    ).scalar_one_or_none()
    return None if remaining is None else int(remaining)


async def _allocate(session: AsyncSession, order: OffsetOrder) -> list[Allocation]:
    lines = list(
        (
            await session.exec(
                select(OrderLine)
                .where(OrderLine.order_id == order.id)
                .order_by(col(OrderLine.position))
            )
        ).all()
    )
    candidates = await _lock_batches(session, order, lines)
    remaining_by_batch: dict[uuid.UUID, int] = {}
    allocations: list[Allocation] = []
    for line in lines:
        need = line.mass_grams
        for batch in candidates[line.bundle_id]:
            available = remaining_by_batch.get(batch.id, batch.remaining_grams)
            take = min(need, available)
            if take <= 0:
                continue
            after = await _take(session, batch, take)
            if after is None:
                continue
            remaining_by_batch[batch.id] = after
            start = batch.quantity_grams - after - take
            allocations.append(
                Allocation(
                    account_id=order.account_id,
                    mode=order.mode,
                    order_id=order.id,
                    bundle_id=line.bundle_id,
                    project_id=batch.project_id,
                    credit_batch_id=batch.id,
                    mass_grams=take,
                    serial_start=start,
                    serial_end=start + take - 1,
                )
            )
            need -= take
            if need == 0:
                break
        if need > 0:
            raise InsufficientInventory(order.id)
    session.add_all(allocations)
    return allocations


async def fulfil_order(session: AsyncSession, order: OffsetOrder, secret: str) -> bool:
    """Fulfil a claimed order inside the caller's transaction; False if parked for stock."""
    try:
        async with session.begin_nested():
            await _allocate(session, order)
            await session.flush()
    except InsufficientInventory:
        order.awaiting_inventory = True
        await session.flush()
        log.info("order %s waits for inventory", order.id)
        return False
    order.state = OrderState.FULFILLED
    order.fulfilled_at = utcnow()
    order.certificate_id = certificate_id(order.id, secret)
    record_state_change(session, order, OrderState.PLACED)
    await session.flush()
    return True


async def fulfil_next(db: Database, secret: str) -> bool | None:
    """Claim and fulfil one order in its own transaction: True fulfilled, False parked, None
    when the queue is empty. Deadlocks and serialization failures are retried."""
    for attempt in range(MAX_DEADLOCK_RETRIES):
        try:
            async with db.transaction() as session:
                order = await claim_next_order(session)
                if order is None:
                    return None
                return await fulfil_order(session, order, secret)
        except DBAPIError as error:
            if not _is_retryable(error) or attempt == MAX_DEADLOCK_RETRIES - 1:
                raise
            log.warning("retrying fulfilment after %s", type(error.orig).__name__)
    return None


def _is_retryable(error: DBAPIError) -> bool:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code in ("40001", "40P01")  # serialization failure, deadlock


async def fulfil_pending(db: Database, secret: str, limit: int = 1000) -> FulfilmentResult:
    """Drain the queue: fulfil or park every claimable order, at most `limit` of them."""
    fulfilled = parked = 0
    if not await has_claimable_orders(db):
        return FulfilmentResult()
    for _ in range(limit):
        outcome = await fulfil_next(db, secret)
        if outcome is None:
            break
        if outcome:
            fulfilled += 1
        else:
            parked += 1
    return FulfilmentResult(fulfilled, parked)


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


async def add_stock(
    session: AsyncSession,
    principal: Principal,
    *,
    project_id: uuid.UUID,
    vintage: int,
    serial_prefix: str,
    quantity_grams: int,
) -> CreditBatch:
    """Add a credit batch and release the orders parked for lack of stock, atomically."""
    batch = await catalog.add_credit_batch(
        session,
        principal,
        project_id=project_id,
        vintage=vintage,
        serial_prefix=serial_prefix,
        quantity_grams=quantity_grams,
    )
    await release_parked_orders(session, principal.account_id, principal.mode)
    return batch
