"""The stock owner on both databases: adding batches, counting, locking and taking credits."""

import uuid

import pytest
from sqlmodel import select

from app.accounts.models import Account, Mode
from app.catalog.models import CreditBatch
from app.db import Database
from app.errors import DomainError, ErrorCode
from app.inventory import service as inventory
from tests.offsets_fixtures import TONNE, seed_catalog


async def test_available_grams_sum_each_bundles_batches_in_scope(
    db: Database, account: Account
) -> None:
    test = await seed_catalog(db, account, Mode.TEST)
    live = await seed_catalog(db, account, Mode.LIVE, forest_tonnes=(5, 5), dac_tonnes=7)
    async with db.session() as session:
        test_stock = await inventory.available_grams_by_bundle(
            session, test.principal, [test.cheap, test.premium, live.cheap]
        )
        live_stock = await inventory.available_grams_by_project(
            session, live.principal, [live.forest, live.dac, uuid.uuid4()]
        )
    # Another mode's bundle id draws nothing here.
    assert test_stock == {test.cheap: 3 * TONNE, test.premium: TONNE, live.cheap: 0}
    assert list(live_stock.values()) == [10 * TONNE, 7 * TONNE, 0]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"vintage": 1989}, "vintage"),
        ({"serial_prefix": "-bad"}, "serialPrefix"),
        ({"quantity_grams": 0}, "quantity.amount"),
        ({"quantity_grams": 10**15 + 1}, "quantity.amount"),
    ],
)
async def test_add_stock_refuses_implausible_batches(
    db: Database, account: Account, changes: dict[str, object], field: str
) -> None:
    seeded = await seed_catalog(db, account)
    batch = {"project_id": seeded.forest, "vintage": 2024, "serial_prefix": "X-1"}
    batch |= {"quantity_grams": TONNE, **changes}
    with pytest.raises(DomainError) as caught:
        async with db.transaction() as session:
            await inventory.add_stock(session, seeded.principal, **batch)  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.field) == (ErrorCode.INVALID_INPUT, field)


async def test_takes_are_all_or_nothing_oldest_vintage_first_with_tiling_serials(
    db: Database, account: Account
) -> None:
    seeded = await seed_catalog(db, account)  # cheap: forest 2020 (1 t) then 2022 (2 t)
    async with db.transaction() as session:
        stock = await inventory.lock_stock(session, [seeded.cheap, seeded.premium])
        first = stock.take(account.id, Mode.TEST, [(seeded.cheap, 1_500_000)])
        too_much = stock.take(
            account.id, Mode.TEST, [(seeded.cheap, TONNE), (seeded.premium, 2 * TONNE)]
        )
        other_mode = stock.take(account.id, Mode.LIVE, [(seeded.cheap, 1)])
        second = stock.take(account.id, Mode.TEST, [(seeded.cheap, TONNE)])
        await stock.apply(session)
    assert too_much is None
    assert other_mode is None
    assert first is not None
    assert second is not None
    assert [(t.batch.vintage, t.grams, t.serial_start, t.serial_end) for t in first] == [
        (2020, TONNE, 0, TONNE - 1),
        (2022, 500_000, 0, 499_999),
    ]
    # The refused take left nothing planned: the second take starts where the first ended.
    assert [(t.batch.vintage, t.grams, t.serial_start) for t in second] == [(2022, TONNE, 500_000)]
    async with db.session() as session:
        remaining = {
            batch.vintage: batch.remaining_grams
            for batch in (await session.exec(select(CreditBatch))).all()
            if batch.project_id == seeded.forest
        }
    assert remaining == {2020: 0, 2022: 500_000}


async def test_a_decrement_beyond_what_is_left_is_refused_by_its_guard(
    db: Database, account: Account
) -> None:
    seeded = await seed_catalog(db, account)
    async with db.transaction() as session:
        stock = await inventory.lock_stock(session, [seeded.premium])
        assert stock.take(account.id, Mode.TEST, [(seeded.premium, TONNE)]) is not None
    # Another transaction takes the batch meanwhile (as if our lock had been missing).
    async with db.transaction() as session:
        other = await inventory.lock_stock(session, [seeded.premium])
        other.take(account.id, Mode.TEST, [(seeded.premium, 1)])
        await other.apply(session)
    with pytest.raises(inventory.StockChanged):
        async with db.transaction() as session:
            await stock.apply(session)
    async with db.session() as session:
        batch = await session.get(CreditBatch, seeded.batches["dac-2023"])
    assert batch is not None
    assert batch.remaining_grams == TONNE - 1
