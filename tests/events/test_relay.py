"""The outbox relay: public sequences in commit order, gap-free, one relay at a time."""

import asyncio
import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.models import Mode
from app.db import Database
from app.events.broker import MemoryBroker
from app.events.models import Event
from app.events.outbox import record_event
from app.events.relay import relay_pending
from app.offsets.fulfilment import fulfil_pending
from tests.conftest import TEST_SECRET, make_account
from tests.offsets_fixtures import place_one_tonne, principal_for, stock_of_tonnes


async def _sequences(db: Database) -> list[int | None]:
    async with db.session() as session:
        return list(
            (await session.exec(select(Event.sequence).order_by(col(Event.position)))).all()
        )


def _write_event(session: AsyncSession, account_id: uuid.UUID) -> Event:
    return record_event(
        session,
        type="order.placed",
        account_id=account_id,
        mode=Mode.TEST,
        subaccount_id=None,
        order_id=uuid.uuid4(),
        state="PLACED",
    )


async def test_relay_numbers_each_state_change_once_and_rings_the_doorbell(db: Database) -> None:
    account = await make_account(db)
    admin = principal_for(account)
    await stock_of_tonnes(db, admin, [5])
    order_id = await place_one_tonne(db, admin)
    await fulfil_pending(db, TEST_SECRET)
    broker = MemoryBroker()
    rings: list[int | None] = []
    broker.listen(rings.append)
    assert await _sequences(db) == [None, None]  # written, not yet published
    assert await relay_pending(db, broker) == 2
    assert await relay_pending(db, broker) == 0
    assert rings == [2]
    async with db.session() as session:
        events = (await session.exec(select(Event).order_by(col(Event.sequence)))).all()
    assert [(e.order_id, e.previous_state, e.state, e.sequence) for e in events] == [
        (order_id, None, "PLACED", 1),
        (order_id, "PLACED", "FULFILLED", 2),
    ]
    assert all(event.published_at is not None for event in events)


async def test_an_event_written_first_but_committed_last_gets_the_later_sequence(
    db: Database,
) -> None:
    """The bug this design removes: with write-time numbers, 1 could commit after 2 was seen."""
    account = await make_account(db)
    if db.is_sqlite:
        # One writer at a time: a transaction's rows are committed before the next one writes.
        async with db.transaction() as session:
            _write_event(session, account.id)
        async with db.transaction() as session:
            _write_event(session, account.id)
        await relay_pending(db, MemoryBroker())
        assert await _sequences(db) == [1, 2]
        return
    slow_started, fast_committed = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        async with db.transaction() as session:
            _write_event(session, account.id)
            await session.flush()  # position 1 taken now
            slow_started.set()
            await fast_committed.wait()
            await relay_pending(db, MemoryBroker())  # publishes only what is committed: #2

    async def fast() -> None:
        await slow_started.wait()
        async with db.transaction() as session:
            _write_event(session, account.id)
        fast_committed.set()

    await asyncio.gather(slow(), fast())
    assert await _sequences(db) == [None, 1]
    await relay_pending(db, MemoryBroker())
    assert await _sequences(db) == [2, 1]  # by commit, not by write


async def test_concurrent_relays_take_turns_and_leave_no_gap_or_repeat(db: Database) -> None:
    account = await make_account(db)
    writing = True

    async def write() -> None:
        nonlocal writing
        for _ in range(30):
            async with db.transaction() as session:
                for _ in range(10):
                    _write_event(session, account.id)
            await asyncio.sleep(0)
        writing = False

    async def relay() -> None:
        while writing or await relay_pending(db, MemoryBroker(), batch_size=7):
            await relay_pending(db, MemoryBroker(), batch_size=7)
            await asyncio.sleep(0)

    await asyncio.gather(write(), *(relay() for _ in range(4)))
    assert sorted(await _sequences(db)) == list(range(1, 301))  # type: ignore[type-var]
