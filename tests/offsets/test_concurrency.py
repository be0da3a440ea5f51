"""Concurrency on real databases: no oversold batch, no duplicated order, ever."""

import asyncio
import contextlib
import itertools
import uuid

from sqlmodel import col, select

from app.catalog.models import CreditBatch
from app.db import Database
from app.errors import DomainError
from app.offsets import service as offsets
from app.offsets.fulfilment import fulfil_pending
from app.offsets.models import Allocation, OffsetOrder, OrderState
from tests.conftest import TEST_SECRET, make_account
from tests.offsets_fixtures import TONNE, place_one_tonne, principal_for, stock_of_tonnes


async def test_fifty_concurrent_orders_for_thirty_tonnes_never_oversell(db: Database) -> None:
    principal = principal_for(await make_account(db))
    await stock_of_tonnes(db, principal, [10, 12, 8])

    order_ids = await asyncio.gather(*(place_one_tonne(db, principal) for _ in range(50)))
    assert len(set(order_ids)) == 50
    # Four workers drain the queue at once, as four worker processes would.
    results = await asyncio.gather(*(fulfil_pending(db, TEST_SECRET) for _ in range(4)))
    assert sum(result.fulfilled for result in results) == 30
    assert sum(result.parked for result in results) == 20

    async with db.session() as session:
        orders = (await session.exec(select(OffsetOrder))).all()
        batches = (await session.exec(select(CreditBatch))).all()
        allocations = (await session.exec(select(Allocation))).all()
    states = [order.state for order in orders]
    assert states.count(OrderState.FULFILLED) == 30
    assert states.count(OrderState.PLACED) == 20
    assert all(batch.remaining_grams == 0 for batch in batches)
    assert sum(allocation.mass_grams for allocation in allocations) == 30 * TONNE
    for batch in batches:
        taken = sorted(
            (a.serial_start, a.serial_end) for a in allocations if a.credit_batch_id == batch.id
        )
        assert sum(end - start + 1 for start, end in taken) == batch.quantity_grams
        # Serial ranges tile the batch exactly: no overlap, no gap.
        assert taken[0][0] == 0
        assert all(nxt[0] == prev[1] + 1 for prev, nxt in itertools.pairwise(taken))
    fulfilled = {order.id for order in orders if order.state is OrderState.FULFILLED}
    for order_id in fulfilled:
        assert sum(a.mass_grams for a in allocations if a.order_id == order_id) == TONNE


async def test_oldest_vintage_is_allocated_first(db: Database) -> None:
    principal = principal_for(await make_account(db))
    await stock_of_tonnes(db, principal, [2, 2])
    first = await place_one_tonne(db, principal)
    await fulfil_pending(db, TEST_SECRET)
    async with db.session() as session:
        allocation = (
            await session.exec(select(Allocation).where(Allocation.order_id == first))
        ).one()
        batch = await session.get(CreditBatch, allocation.credit_batch_id)
    assert batch is not None
    assert batch.vintage == 2020


async def test_twenty_concurrent_creates_with_one_key_make_one_order(db: Database) -> None:
    principal = principal_for(await make_account(db))
    await stock_of_tonnes(db, principal, [5])
    order_ids = await asyncio.gather(
        *(place_one_tonne(db, principal, key="same-key") for _ in range(20))
    )
    assert len(set(order_ids)) == 1
    async with db.session() as session:
        count = len(
            (
                await session.exec(
                    select(OffsetOrder.id).where(col(OffsetOrder.idempotency_key) == "same-key")
                )
            ).all()
        )
    assert count == 1


async def test_workers_racing_cancellations_leave_consistent_orders(db: Database) -> None:
    principal = principal_for(await make_account(db))
    await stock_of_tonnes(db, principal, [20])
    order_ids = await asyncio.gather(*(place_one_tonne(db, principal) for _ in range(20)))

    async def try_cancel(order_id: uuid.UUID) -> None:
        # Refused when the worker fulfilled it first: exactly what may happen.
        with contextlib.suppress(DomainError):
            async with db.transaction() as session:
                await offsets.cancel_order(session, principal, order_id)

    await asyncio.gather(
        fulfil_pending(db, TEST_SECRET),
        fulfil_pending(db, TEST_SECRET),
        *(try_cancel(order_id) for order_id in order_ids[::2]),
    )
    async with db.session() as session:
        orders = (await session.exec(select(OffsetOrder))).all()
        allocations = (await session.exec(select(Allocation))).all()
        batch = (await session.exec(select(CreditBatch))).one()
    allocated = {allocation.order_id for allocation in allocations}
    for order in orders:
        if order.state is OrderState.CANCELLED:
            assert order.id not in allocated
        else:
            assert order.state is OrderState.FULFILLED
            assert order.id in allocated
    fulfilled = sum(order.state is OrderState.FULFILLED for order in orders)
    assert batch.remaining_grams == (20 - fulfilled) * TONNE
