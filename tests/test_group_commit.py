"""Group commit on both databases: concurrent writes share one transaction, each in its own
savepoint, and every caller is answered after the commit with its own result or error."""

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.service import Principal
from app.db import Database
from app.emissions import service as emissions
from app.errors import DomainError, ErrorCode
from app.offsets import service as offsets
from app.offsets.models import OffsetOrder
from tests.conftest import make_account
from tests.offsets_fixtures import TONNE, principal_for, stock_of_tonnes


def count_commits(db: Database) -> list[int]:
    commits = [0]

    @event.listens_for(db.engine.sync_engine, "commit")
    def on_commit(_connection: Any) -> None:
        commits[0] += 1

    return commits


async def _principal(db: Database) -> Principal:
    principal = principal_for(await make_account(db))
    await stock_of_tonnes(db, principal, [5])
    return principal


def _create(principal: Principal, grams: int = TONNE, key: str | None = None) -> Any:
    async def work(session: AsyncSession) -> OffsetOrder:
        options = offsets.OrderOptions(idempotency_key=key)
        return await offsets.create_order_by_mass(session, principal, grams, options)

    return work


async def _orders(db: Database) -> list[OffsetOrder]:
    async with db.session() as session:
        return list((await session.exec(select(OffsetOrder))).all())


async def test_concurrent_creates_share_few_commits_and_each_gets_its_own_order(
    db: Database,
) -> None:
    principal = await _principal(db)
    commits = count_commits(db)
    orders = await asyncio.gather(*(db.grouped(_create(principal)) for _ in range(30)))
    assert len({order.id for order in orders}) == 30
    assert {order.id for order in await _orders(db)} == {order.id for order in orders}
    assert commits[0] <= 2  # the first caller may commit alone; the other 29 queue behind it


async def test_one_failing_write_rolls_back_only_itself_and_only_its_caller_sees_the_error(
    db: Database,
) -> None:
    principal = await _principal(db)

    async def write_then_fail(session: AsyncSession) -> None:
        await _create(principal)(session)  # written, then undone with its savepoint
        raise DomainError(ErrorCode.INVALID_INPUT, "refused", "mass")

    results = await asyncio.gather(
        db.grouped(_create(principal)),
        db.grouped(write_then_fail),
        db.grouped(_create(principal, 0)),  # QUANTITY_NOT_POSITIVE
        db.grouped(_create(principal)),
        return_exceptions=True,
    )
    assert isinstance(results[0], OffsetOrder)
    assert isinstance(results[3], OffsetOrder)
    assert isinstance(results[1], DomainError)
    assert results[1].code is ErrorCode.INVALID_INPUT
    assert isinstance(results[2], DomainError)
    assert results[2].code is ErrorCode.QUANTITY_NOT_POSITIVE
    assert {order.id for order in await _orders(db)} == {results[0].id, results[3].id}


async def test_callers_are_answered_only_after_the_commit(db: Database) -> None:
    principal = await _principal(db)

    async def create_and_look() -> bool:
        order = await db.grouped(_create(principal))
        # Another session (another connection) sees the order the moment its caller does.
        async with db.session() as session:
            return await session.get(OffsetOrder, order.id) is not None

    assert all(await asyncio.gather(*(create_and_look() for _ in range(10))))


async def test_duplicate_keys_within_one_group_make_one_order_or_conflict(db: Database) -> None:
    principal = await _principal(db)
    results = await asyncio.gather(
        *(db.grouped(_create(principal, key="same")) for _ in range(10)),
        db.grouped(_create(principal, 2 * TONNE, key="same")),
        return_exceptions=True,
    )
    orders = [result for result in results if isinstance(result, OffsetOrder)]
    assert len(orders) == 10
    assert len({order.id for order in orders}) == 1
    assert isinstance(results[-1], DomainError)
    assert results[-1].code is ErrorCode.IDEMPOTENCY_CONFLICT
    async with db.session() as session:
        keyed = (
            await session.exec(
                select(OffsetOrder).where(col(OffsetOrder.idempotency_key) == "same")
            )
        ).all()
    assert len(keyed) == 1


@pytest.mark.parametrize("staged", [False, True], ids=["savepoint", "staged"])
async def test_one_estimate_is_ordered_once_even_within_one_group(
    db: Database, staged: bool
) -> None:
    principal = await _principal(db)
    async with db.transaction() as session:
        estimate = await emissions.estimate_ground_transport(
            session, principal, distance_km=Decimal(100), vehicle_type="PASSENGER_CAR_VAN_OR_SUV"
        )

    async def order_estimate(session: AsyncSession) -> OffsetOrder:
        return await offsets.create_order_by_estimate(
            session, principal, estimate, offsets.OrderOptions()
        )

    async def stage(session: AsyncSession) -> Any:
        return await offsets.stage_order_by_estimate(
            session, principal, estimate, offsets.OrderOptions()
        )

    results = await asyncio.gather(
        *(db.grouped_staged(stage) if staged else db.grouped(order_estimate) for _ in range(8)),
        return_exceptions=True,
    )
    orders = [result for result in results if isinstance(result, OffsetOrder)]
    refusals = [result for result in results if isinstance(result, DomainError)]
    assert len(orders) == 1
    assert [error.code for error in refusals] == [ErrorCode.ESTIMATE_ALREADY_ORDERED] * 7
    assert [order.id for order in await _orders(db)] == [orders[0].id]


async def test_a_failed_transaction_fails_every_caller_of_its_group(db: Database) -> None:
    principal = await _principal(db)

    async def break_the_transaction(session: AsyncSession) -> None:
        # Closing the connection under the transaction makes the group's commit fail.
        await (await session.connection()).invalidate()

    results = await asyncio.gather(
        db.grouped(_create(principal)),
        db.grouped(break_the_transaction),
        db.grouped(_create(principal)),
        return_exceptions=True,
    )
    assert all(isinstance(result, Exception) for result in results[1:])
    assert len(await _orders(db)) == sum(isinstance(r, OffsetOrder) for r in results)
    # The writer goes on serving later groups.
    assert isinstance(await db.grouped(_create(principal)), OffsetOrder)


async def test_a_caller_that_leaves_before_its_turn_writes_nothing(db: Database) -> None:
    principal = await _principal(db)
    blocker = asyncio.Event()

    async def slow(session: AsyncSession) -> None:
        await blocker.wait()

    slow_task = asyncio.ensure_future(db.grouped(slow))
    await asyncio.sleep(0.05)  # `slow` now holds the group
    leaving = asyncio.ensure_future(db.grouped(_create(principal)))
    await asyncio.sleep(0)
    leaving.cancel()
    blocker.set()
    await slow_task
    assert await _orders(db) == []


def _stage(principal: Principal, grams: int = TONNE, key: str | None = None) -> Any:
    async def stage(session: AsyncSession) -> Any:
        options = offsets.OrderOptions(idempotency_key=key)
        return await offsets.stage_order_by_mass(session, principal, grams, options)

    return stage


def count_inserts(db: Database) -> list[str]:
    inserts: list[str] = []

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def on_execute(*args: Any) -> None:
        statement = args[2]
        if statement.lstrip().upper().startswith("INSERT"):
            inserts.append(statement.split("(")[0].split()[-1])

    return inserts


async def test_staged_creates_insert_each_table_once_per_group(db: Database) -> None:
    principal = await _principal(db)
    await db.grouped_staged(_stage(principal))  # the first may commit alone
    inserts = count_inserts(db)
    orders = await asyncio.gather(*(db.grouped_staged(_stage(principal)) for _ in range(20)))
    assert len({order.id for order in orders}) == 20
    stored = {order.id: order for order in await _orders(db)}
    assert all(stored[order.id].mass_grams == TONNE for order in orders)
    # Orders, lines, events and the data versions: one statement each, for all 20 creates.
    assert sorted(inserts) == ["data_version", "event", "offset_order", "order_line"]


async def test_staged_duplicate_keys_within_one_group_make_one_order_or_conflict(
    db: Database,
) -> None:
    principal = await _principal(db)
    results = await asyncio.gather(
        *(db.grouped_staged(_stage(principal, key="same")) for _ in range(10)),
        db.grouped_staged(_stage(principal, 2 * TONNE, key="same")),
        db.grouped_staged(_stage(principal, 0)),  # QUANTITY_NOT_POSITIVE, nothing staged
        db.grouped_staged(_stage(principal, key="other")),
        return_exceptions=True,
    )
    orders = [result for result in results[:10] if isinstance(result, OffsetOrder)]
    assert len(orders) == 10
    assert len({order.id for order in orders}) == 1
    assert isinstance(results[10], DomainError)
    assert results[10].code is ErrorCode.IDEMPOTENCY_CONFLICT
    assert isinstance(results[11], DomainError)
    assert results[11].code is ErrorCode.QUANTITY_NOT_POSITIVE
    assert isinstance(results[12], OffsetOrder)
    assert {order.idempotency_key for order in await _orders(db)} == {"same", "other"}
    # A replay once committed stages nothing and answers the same order.
    again = await db.grouped_staged(_stage(principal, key="same"))
    assert again.id == orders[0].id
