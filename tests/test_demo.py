"""The demo seed's keys: only keys that exist and are not revoked are ever printed."""

from sqlmodel import select

from app import demo
from app.accounts import service as accounts
from app.accounts.keys import hash_api_key
from app.accounts.models import ApiKey
from app.db import Database, utcnow
from tests.conftest import TEST_SECRET, make_account


async def test_no_demo_keys_are_offered_on_a_database_without_the_demo(db: Database) -> None:
    await make_account(db, "acme")
    async with db.session() as session:
        assert await demo.usable_demo_keys(session, TEST_SECRET) == []


async def test_revoked_demo_keys_stay_revoked_and_unlisted(db: Database) -> None:
    async with db.transaction() as session:
        seeded = await demo.seed_demo(session, TEST_SECRET)
    assert len(seeded) == 4
    async with db.transaction() as session:
        stored = (
            await session.exec(select(ApiKey).where(ApiKey.key_hash == hash_api_key(seeded[0].key)))
        ).one()
        stored.revoked_at = utcnow()
    async with db.transaction() as session:
        again = await demo.seed_demo(session, TEST_SECRET)
        account = await accounts.get_account_by_slug(session, demo.DEMO_SLUG)
    assert again == seeded[1:]
    assert account.name == demo.DEMO_NAME
