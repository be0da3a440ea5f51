"""Accounts, keys, subaccounts and authentication against a real database."""

from datetime import timedelta

import pytest
from sqlalchemy import MetaData
from sqlmodel import select

from app.accounts import service
from app.accounts.models import Account, AccountStatus, ApiKey, Mode
from app.db import Database, utcnow
from app.errors import ErrorCode, Forbidden, InvalidInput, NotFound
from tests.conftest import make_account, make_key


async def test_create_account_rejects_bad_and_duplicate_slugs(db: Database) -> None:
    await make_account(db, "acme")
    for slug in ("", "Acme", "-acme", "acme-", "a" * 65, "ac me"):
        with pytest.raises(InvalidInput) as bad:
            async with db.transaction() as session:
                await service.create_account(session, "Acme", slug)
        assert bad.value.field == "slug"
    with pytest.raises(InvalidInput, match="already exists"):
        async with db.transaction() as session:
            await service.create_account(session, "Acme again", "acme")
    async with db.session() as session:
        assert len((await session.exec(select(Account))).all()) == 1


async def test_plain_key_is_stored_nowhere_in_the_database(db: Database) -> None:
    account = await make_account(db)
    _, plain = await make_key(db, account, Mode.LIVE, admin=True)
    metadata = MetaData()
    dump = []
    async with db.engine.connect() as connection:
        await connection.run_sync(lambda sync: metadata.reflect(sync))
        for table in metadata.sorted_tables:
            for row in (await connection.execute(table.select())).all():
                dump.extend(str(value) for value in row)
    everything = " ".join(dump)
    assert plain not in everything
    assert plain.removeprefix("cg_live_") not in everything
    assert service.hash_api_key(plain) in everything


async def test_authenticate_returns_the_principal_of_a_valid_key(db: Database) -> None:
    account = await make_account(db)
    api_key, plain = await make_key(db, account, Mode.LIVE, admin=True)
    async with db.session() as session:
        principal, stale = await service.authenticate(session, plain)
    assert principal.account_id == account.id
    assert principal.mode is Mode.LIVE
    assert principal.is_admin
    assert principal.api_key_id == api_key.id
    assert principal.subaccount is None
    assert stale  # never used yet


@pytest.mark.parametrize(
    "key", [None, "", "Bearer", "cg_test_", "cg_test_unknown", "sk_live_abc", "cg_live_" + "x" * 43]
)
async def test_authenticate_refuses_missing_malformed_and_unknown_keys(
    db: Database, key: str | None
) -> None:
    with pytest.raises(service.NotAuthenticated):
        async with db.session() as session:
            await service.authenticate(session, key)


async def test_revoked_key_no_longer_authenticates(db: Database) -> None:
    account = await make_account(db)
    _, admin_plain = await make_key(db, account, admin=True)
    victim, victim_plain = await make_key(db, account)
    async with db.session() as session:
        admin, _ = await service.authenticate(session, admin_plain)
    async with db.transaction() as session:
        revoked = await service.revoke_api_key(session, admin, victim.id)
    assert revoked.revoked_at is not None
    with pytest.raises(service.NotAuthenticated, match="revoked"):
        async with db.session() as session:
            await service.authenticate(session, victim_plain)


async def test_only_admin_keys_manage_keys(db: Database) -> None:
    account = await make_account(db)
    plain_key, plain = await make_key(db, account)
    async with db.session() as session:
        principal, _ = await service.authenticate(session, plain)
    with pytest.raises(Forbidden):
        async with db.transaction() as session:
            await service.create_api_key_as(session, principal, name="x", is_admin=True)
    with pytest.raises(Forbidden):
        async with db.transaction() as session:
            await service.revoke_api_key(session, principal, plain_key.id)


async def test_admin_cannot_revoke_another_accounts_or_modes_key(db: Database) -> None:
    acme, other = await make_account(db, "acme"), await make_account(db, "other")
    _, admin_plain = await make_key(db, acme, Mode.TEST, admin=True)
    foreign, _ = await make_key(db, other, Mode.TEST)
    own_live, _ = await make_key(db, acme, Mode.LIVE)
    async with db.session() as session:
        admin, _ = await service.authenticate(session, admin_plain)
    for key in (foreign, own_live):
        with pytest.raises(NotFound):
            async with db.transaction() as session:
                await service.revoke_api_key(session, admin, key.id)


async def test_admin_key_creates_keys_only_in_its_own_mode(db: Database) -> None:
    account = await make_account(db)
    _, admin_plain = await make_key(db, account, Mode.TEST, admin=True)
    async with db.session() as session:
        admin, _ = await service.authenticate(session, admin_plain)
    async with db.transaction() as session:
        new_key, new_plain = await service.create_api_key_as(
            session, admin, name="ci", is_admin=False
        )
    assert new_key.mode is Mode.TEST
    assert new_plain.startswith("cg_test_")


async def test_subaccount_scoping_accepts_only_own_subaccounts_in_the_same_mode(
    db: Database,
) -> None:
    acme, other = await make_account(db, "acme"), await make_account(db, "other")
    _, acme_test = await make_key(db, acme, Mode.TEST)
    _, acme_live = await make_key(db, acme, Mode.LIVE)
    _, other_test = await make_key(db, other, Mode.TEST)
    async with db.session() as session:
        principal, _ = await service.authenticate(session, acme_test)
    async with db.transaction() as session:
        client = await service.create_subaccount(session, principal, name="Client A")
    assert client.mode is Mode.TEST
    async with db.session() as session:
        scoped, _ = await service.authenticate(session, acme_test, client.id)
    assert scoped.subaccount_id == client.id
    for foreign_key in (acme_live, other_test):
        with pytest.raises(Forbidden):
            async with db.session() as session:
                await service.authenticate(session, foreign_key, client.id)


async def test_key_use_is_recorded_at_most_once_a_minute(db: Database) -> None:
    account = await make_account(db)
    api_key, plain = await make_key(db, account)
    async with db.transaction() as session:
        await service.record_key_use(session, api_key.id)
    async with db.session() as session:
        _, stale = await service.authenticate(session, plain)
        assert not stale
        _, stale_later = await service.authenticate(
            session, plain, now=utcnow() + timedelta(minutes=2)
        )
        assert stale_later
        stored = await session.get(ApiKey, api_key.id)
    assert stored is not None
    assert stored.last_used_at is not None
    assert stored.last_used_at.tzinfo is not None


async def test_suspended_account_authenticates_but_cannot_act(db: Database) -> None:
    account = await make_account(db)
    _, plain = await make_key(db, account)
    async with db.transaction() as session:
        await service.set_account_status(session, "acme", AccountStatus.SUSPENDED)
    async with db.session() as session:
        principal, _ = await service.authenticate(session, plain)
    assert principal.account.status is AccountStatus.SUSPENDED
    with pytest.raises(service.DomainError) as refused:
        principal.require_active()
    assert refused.value.code is ErrorCode.ACCOUNT_SUSPENDED
