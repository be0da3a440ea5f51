"""Product upserts: two requests storing one product id at once both succeed, the later as
the update of the earlier."""

import asyncio
import dataclasses

from sqlmodel import select

from app.accounts.models import Account
from app.db import Database
from app.emissions.demo import DEMO_PRODUCTS
from app.emissions.models import Product
from app.emissions.products import upsert_product
from tests.offsets_fixtures import principal_for


async def test_a_concurrent_upsert_of_the_same_product_becomes_its_update(
    db: Database, account: Account
) -> None:
    principal = principal_for(account)
    spec = DEMO_PRODUCTS[0]
    flushed, release = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with db.transaction() as session:
            await upsert_product(session, principal, spec)
            flushed.set()
            await release.wait()

    async def second() -> str:
        await flushed.wait()
        async with db.transaction() as session:
            product = await upsert_product(
                session, principal, dataclasses.replace(spec, name="Renamed")
            )
            return product.name

    tasks = asyncio.create_task(first()), asyncio.create_task(second())
    await flushed.wait()
    await asyncio.sleep(0.3)  # the second now waits on the first's row (or its write lock)
    release.set()
    await tasks[0]
    assert await tasks[1] == "Renamed"
    async with db.session() as session:
        names = (await session.exec(select(Product.name))).all()
    assert names == ["Renamed"]
