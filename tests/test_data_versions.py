"""Data versions: each committing write advances exactly the scopes it wrote, in its transaction."""

import asyncio
import sqlite3
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts import service as accounts
from app.accounts.models import Account, AccountStatus, ApiKey, Mode
from app.catalog import service as catalog
from app.catalog.models import ProjectType
from app.config import Settings
from app.data_versions import (
    EPOCH_SCOPE,
    GLOBAL_SCOPE,
    SQLiteVersionReader,
    account_row_scope,
    account_scope,
    read_scopes,
    read_versions,
)
from app.db import Database, insert_rows
from app.offsets.models import OffsetOrder, OrderLine
from tests.conftest import make_account, make_key
from tests.offsets_fixtures import fulfil, place_order, principal_for, seed_catalog


async def versions(db: Database, *accounts_and_modes: tuple[Account, Mode]) -> dict[str, int]:
    scopes = [GLOBAL_SCOPE]
    for account, mode in accounts_and_modes:
        scopes += [account_row_scope(account.id), account_scope(account.id, mode)]
    return dict(zip(scopes, await read_versions(db.engine, scopes), strict=True))


def advanced(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {scope for scope, version in after.items() if version != before[scope]}


async def test_the_epoch_is_a_random_number_written_by_the_migration(db: Database) -> None:
    (epoch,) = await read_versions(db.engine, [EPOCH_SCOPE])
    assert epoch > 0


async def test_orm_writes_advance_their_account_and_mode_only(db: Database) -> None:
    acme, other = await make_account(db), await make_account(db, "other", "Other")
    before = await versions(db, (acme, Mode.TEST), (acme, Mode.LIVE), (other, Mode.TEST))
    await seed_catalog(db, acme)
    after = await versions(db, (acme, Mode.TEST), (acme, Mode.LIVE), (other, Mode.TEST))
    assert advanced(before, after) == {account_scope(acme.id, Mode.TEST)}


async def test_an_account_row_advances_its_modeless_scope(db: Database) -> None:
    acme = await make_account(db)
    before = await versions(db, (acme, Mode.TEST))
    async with db.transaction() as session:
        await accounts.set_account_status(session, "acme", AccountStatus.SUSPENDED)
    after = await versions(db, (acme, Mode.TEST))
    assert advanced(before, after) == {account_row_scope(acme.id)}


async def test_core_updates_are_scoped_by_the_rows_they_change(db: Database) -> None:
    acme, other = await make_account(db), await make_account(db, "other", "Other")
    key, _ = await make_key(db, acme, Mode.LIVE)
    before = await versions(db, (acme, Mode.LIVE), (other, Mode.LIVE))
    async with db.transaction() as session:
        await accounts.record_key_use(session, key.id)  # UPDATE … WHERE id = :id
    after = await versions(db, (acme, Mode.LIVE), (other, Mode.LIVE))
    assert advanced(before, after) == {account_scope(acme.id, Mode.LIVE)}


async def test_core_statements_with_their_scope_in_values_or_where(db: Database) -> None:
    acme = await make_account(db)
    await make_key(db, acme, Mode.TEST)
    before = await versions(db, (acme, Mode.TEST))
    async with db.transaction() as session:
        await session.exec(
            update(ApiKey)
            .where(col(ApiKey.account_id) == acme.id, col(ApiKey.mode) == Mode.TEST)
            .values(name="renamed")
        )
    middle = await versions(db, (acme, Mode.TEST))
    assert advanced(before, middle) == {account_scope(acme.id, Mode.TEST)}
    async with db.transaction() as session:
        await session.exec(
            insert(ApiKey).values(
                id=uuid.uuid4(),
                account_id=acme.id,
                mode=Mode.TEST,
                name="core",
                display_prefix="cg_test_x",
                key_hash=uuid.uuid4().hex,
            )
        )
    after = await versions(db, (acme, Mode.TEST))
    assert advanced(middle, after) == {account_scope(acme.id, Mode.TEST)}


async def test_text_dml_advances_every_scope(db: Database) -> None:
    acme = await make_account(db)
    before = await versions(db, (acme, Mode.TEST))
    async with db.transaction() as session:
        await session.exec(text("UPDATE account SET name = 'x' WHERE slug = 'nobody'"))  # type: ignore[call-overload]
    after = await versions(db, (acme, Mode.TEST))
    assert advanced(before, after) == {GLOBAL_SCOPE}


async def add_a_project(session: AsyncSession, account: Account, registry_id: str) -> None:
    await catalog.create_project(
        session,
        principal_for(account),
        name=f"Project {registry_id}",
        project_type=ProjectType.BIOCHAR,
        registry="Puro.earth",
        registry_id=registry_id,
        country="FI",
    )


async def write_a_project_then_fail(db: Database, account: Account) -> None:
    async with db.transaction() as session:
        await add_a_project(session, account, "P-9")
        raise RuntimeError("abort")


async def test_a_rolled_back_write_advances_nothing(db: Database) -> None:
    acme = await make_account(db)
    before = await versions(db, (acme, Mode.TEST))
    with pytest.raises(RuntimeError):
        await write_a_project_then_fail(db, acme)
    assert advanced(before, await versions(db, (acme, Mode.TEST))) == set()


async def test_background_fulfilment_advances_the_orders_scope(
    db: Database, settings: Settings
) -> None:
    acme, other = await make_account(db), await make_account(db, "other", "Other")
    await seed_catalog(db, acme)
    await seed_catalog(db, other)
    order = await place_order(db, acme, 1_000)
    before = await versions(db, (acme, Mode.TEST), (other, Mode.TEST))
    assert (await fulfil(db, settings)).fulfilled
    after = await versions(db, (acme, Mode.TEST), (other, Mode.TEST))
    assert advanced(before, after) == {account_scope(acme.id, Mode.TEST)}
    async with db.session() as session:
        assert (await session.get(OffsetOrder, order.id)) is not None


async def test_a_row_without_scope_columns_advances_the_scope_of_the_row_it_names(
    db: Database,
) -> None:
    acme, other = await make_account(db), await make_account(db, "other", "Other")
    await seed_catalog(db, acme)
    order = await place_order(db, acme, 1_000)
    before = await versions(db, (acme, Mode.TEST), (other, Mode.TEST))
    async with db.transaction() as session:
        line = (await session.exec(select(OrderLine).where(OrderLine.order_id == order.id))).first()
        assert line is not None
        line.position += 10  # an order line has no account or mode of its own
    after = await versions(db, (acme, Mode.TEST), (other, Mode.TEST))
    assert advanced(before, after) == {account_scope(acme.id, Mode.TEST)}


async def test_created_orders_lines_advance_their_orders_scope_not_every_scope(
    db: Database,
) -> None:
    # Creates insert their order lines with Core, and a line has no account or mode: it takes
    # its order's scope (inserted just before), so a create leaves other accounts' caches be.
    acme, other = await make_account(db), await make_account(db, "other", "Other")
    await seed_catalog(db, acme)
    before = await versions(db, (acme, Mode.TEST), (other, Mode.TEST))
    await place_order(db, acme, 1_000)
    after = await versions(db, (acme, Mode.TEST), (other, Mode.TEST))
    assert advanced(before, after) == {account_scope(acme.id, Mode.TEST)}


async def test_core_inserted_rows_naming_an_older_row_advance_that_rows_scope(
    db: Database,
) -> None:
    acme, other = await make_account(db), await make_account(db, "other", "Other")
    await seed_catalog(db, acme)
    order = await place_order(db, acme, 1_000)
    async with db.session() as session:
        line = (await session.exec(select(OrderLine).where(OrderLine.order_id == order.id))).first()
    assert line is not None
    async with db.engine.begin() as connection:  # behind the tracked sessions' back
        await connection.execute(delete(OrderLine).where(col(OrderLine.id) == line.id))
    before = await versions(db, (acme, Mode.TEST), (other, Mode.TEST))
    async with db.transaction() as session:
        await insert_rows(session, OrderLine, [line.model_dump()])
    after = await versions(db, (acme, Mode.TEST), (other, Mode.TEST))
    assert advanced(before, after) == {account_scope(acme.id, Mode.TEST)}


def test_read_scopes_cover_the_epoch_every_write_the_account_and_its_mode() -> None:
    account_id = uuid.uuid4()
    assert set(read_scopes(account_id, Mode.TEST)) == {
        EPOCH_SCOPE,
        GLOBAL_SCOPE,
        account_row_scope(account_id),
        account_scope(account_id, Mode.TEST),
    }


async def test_a_group_commit_advances_every_committed_unit_even_when_another_rolls_back(
    db: Database,
) -> None:
    # Group commit runs concurrent creates of different accounts as savepoints of one
    # transaction: a unit's rollback must not drop the scopes the others recorded.
    acme, other = await make_account(db), await make_account(db, "other", "Other")
    before = await versions(db, (acme, Mode.TEST), (other, Mode.TEST))

    async def write_project(session: object, account: Account, fail: bool) -> None:
        await catalog.create_project(
            session,  # type: ignore[arg-type]
            principal_for(account),
            name=f"Grouped {account.slug}",
            project_type=ProjectType.BIOCHAR,
            registry="Puro.earth",
            registry_id=f"G-{uuid.uuid4().hex[:6]}",
            country="FI",
        )
        if fail:
            raise RuntimeError("this unit fails")

    results = await asyncio.gather(
        db.grouped(lambda session: write_project(session, acme, False)),
        db.grouped(lambda session: write_project(session, other, True)),
        return_exceptions=True,
    )
    assert results[0] is None
    assert isinstance(results[1], RuntimeError)
    after = await versions(db, (acme, Mode.TEST), (other, Mode.TEST))
    assert account_scope(acme.id, Mode.TEST) in advanced(before, after)


async def add_in_a_savepoint(session: AsyncSession, row: object) -> None:
    async with session.begin_nested():
        session.add(row)
        await session.flush()


async def test_a_rolled_back_savepoint_keeps_the_scopes_written_before_it(db: Database) -> None:
    acme = await make_account(db)
    before = await versions(db, (acme, Mode.TEST))
    async with db.transaction() as session:
        await add_a_project(session, acme, "P-8")
        with pytest.raises(IntegrityError):  # a savepoint that rolls back
            await add_in_a_savepoint(session, Account(name="Dup", slug="acme"))
    assert advanced(before, await versions(db, (acme, Mode.TEST))) == {
        account_scope(acme.id, Mode.TEST)
    }


async def test_the_sqlite_reader_sees_every_commit_at_once_and_only_serves_wal_files(
    db: Database, tmp_path: Path
) -> None:
    if not db.is_sqlite:
        assert SQLiteVersionReader.for_engine(db.engine) is None
        return
    reader = SQLiteVersionReader.for_engine(db.engine)
    assert reader is not None
    try:
        account = await make_account(db)
        scopes = read_scopes(account.id, Mode.TEST)
        assert reader.read(scopes) == await read_versions(db.engine, scopes)
        await seed_catalog(db, account)  # committed through the engine's own connections
        fresh = await read_versions(db.engine, scopes)
        assert reader.read(scopes) == fresh
        assert fresh[-1] > 0
    finally:
        reader.close()
    rollback_journal = tmp_path / "journal.db"
    sqlite3.connect(rollback_journal).execute("CREATE TABLE t (x)").connection.close()
    for url in (f"sqlite+aiosqlite:///{rollback_journal}", "sqlite+aiosqlite://"):
        engine = create_async_engine(url)
        assert SQLiteVersionReader.for_engine(engine) is None  # a reader could wait there
        await engine.dispose()


_COMMIT_ELSEWHERE = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1])
connection.execute(
    "INSERT INTO data_version (scope, version) VALUES (?, 1)"
    " ON CONFLICT (scope) DO UPDATE SET version = version + 1",
    (sys.argv[2],),
)
connection.commit()
"""


async def test_the_sqlite_reader_reads_again_only_after_a_commit_of_any_process(
    db: Database,
) -> None:
    """Between commits the reader answers the versions it read (one `PRAGMA data_version`
    each time, no SELECT); a commit of another process, or of this one's engine, is seen at
    the very next read."""
    if not db.is_sqlite:
        return
    reader = SQLiteVersionReader.for_engine(db.engine)
    assert reader is not None
    statements: list[str] = []
    reader._connection.set_trace_callback(statements.append)
    try:
        account = await make_account(db)
        scopes = read_scopes(account.id, Mode.TEST)
        first = reader.read(scopes)
        for _ in range(5):
            assert reader.read(scopes) == first
        selects = [s for s in statements if s.startswith("SELECT")]
        assert len(selects) == 1, statements
        path = db.engine.url.database
        assert path is not None
        # Another process: not this process's engine nor its connections.
        other = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _COMMIT_ELSEWHERE, path, scopes[-1]
        )
        assert await asyncio.wait_for(other.wait(), 30) == 0
        second = reader.read(scopes)
        assert first is not None
        assert second is not None
        assert second[-1] == first[-1] + 1
        assert second == await read_versions(db.engine, scopes)
        await seed_catalog(db, account)  # this process's engine commits
        third = reader.read(scopes)
        assert third == await read_versions(db.engine, scopes)
        assert third is not None
        assert third[-1] > second[-1]
        assert reader.read(scopes) == third
        assert len([s for s in statements if s.startswith("SELECT")]) == 3
    finally:
        reader.close()


# A row moved to another account or mode: reads of both scopes must see it go.

MOVES = {
    "ORM object": None,
    "Core UPDATE by primary key": lambda key, to: (
        update(ApiKey).where(col(ApiKey.id) == key.id).values(account_id=to[0].id, mode=to[1])
    ),
    "Core UPDATE with its scope in WHERE": lambda key, to: (
        update(ApiKey)
        .where(col(ApiKey.account_id) == key.account_id, col(ApiKey.mode) == key.mode)
        .values({ApiKey.account_id: to[0].id, ApiKey.mode: to[1]})
    ),
}


@pytest.mark.parametrize("how", list(MOVES))
async def test_a_row_moved_between_accounts_and_modes_advances_both_scopes(
    db: Database, how: str
) -> None:
    acme, other = await make_account(db), await make_account(db, "other", "Other")
    key, _ = await make_key(db, acme, Mode.TEST)
    scopes = ((acme, Mode.TEST), (acme, Mode.LIVE), (other, Mode.TEST), (other, Mode.LIVE))
    before = await versions(db, *scopes)
    async with db.transaction() as session:
        if (move := MOVES[how]) is None:
            row = await session.get(ApiKey, key.id)
            assert row is not None
            row.account_id, row.mode = other.id, Mode.LIVE
        else:
            await session.exec(move(key, (other, Mode.LIVE)))
    assert advanced(before, await versions(db, *scopes)) == {
        account_scope(acme.id, Mode.TEST),
        account_scope(other.id, Mode.LIVE),
    }


async def test_a_move_of_the_mode_alone_keeps_each_rows_account(db: Database) -> None:
    # The ORM's bulk UPDATE by primary key sets only `mode`: the new scope takes the account
    # of each row from the database.
    acme, other = await make_account(db), await make_account(db, "other", "Other")
    acme_key, other_key = (await make_key(db, acme))[0], (await make_key(db, other))[0]
    scopes = ((acme, Mode.TEST), (acme, Mode.LIVE), (other, Mode.TEST), (other, Mode.LIVE))
    before = await versions(db, *scopes)
    async with db.transaction() as session:
        await session.execute(  # the ORM's bulk UPDATE: exec() takes no parameter list
            update(ApiKey), [{"id": k.id, "mode": Mode.LIVE} for k in (acme_key, other_key)]
        )
    assert advanced(before, await versions(db, *scopes)) == {
        account_scope(account.id, mode) for account, mode in scopes
    }


async def test_a_scope_set_to_an_sql_expression_advances_every_scope(db: Database) -> None:
    acme = await make_account(db)
    key, _ = await make_key(db, acme, Mode.TEST)
    before = await versions(db, (acme, Mode.TEST))
    async with db.transaction() as session:
        await session.exec(
            update(ApiKey).where(col(ApiKey.id) == key.id).values(mode=col(ApiKey.mode))
        )
    assert GLOBAL_SCOPE in advanced(before, await versions(db, (acme, Mode.TEST)))


async def test_a_line_moved_to_another_accounts_order_advances_both_scopes(
    db: Database,
) -> None:
    # An order line has no scope columns: it is in the scope of the rows it names (its order
    # and its bundle, always of one account and mode). Moved with both, it leaves one scope
    # for another.
    acme, other = await make_account(db), await make_account(db, "other", "Other")
    ours, theirs = await seed_catalog(db, acme), await seed_catalog(db, other)
    acme_order, other_order = (
        await place_order(db, acme, 1_000),
        await place_order(db, other, 1_000),
    )
    async with db.engine.begin() as connection:  # behind the tracked sessions' back
        await connection.execute(delete(OrderLine).where(col(OrderLine.order_id) == other_order.id))
    their_bundle = {ours.cheap: theirs.cheap, ours.premium: theirs.premium}
    before = await versions(db, (acme, Mode.TEST), (other, Mode.TEST))
    async with db.transaction() as session:
        lines = await session.exec(select(OrderLine).where(OrderLine.order_id == acme_order.id))
        for line in lines:
            line.order_id, line.bundle_id = other_order.id, their_bundle[line.bundle_id]
    assert advanced(before, await versions(db, (acme, Mode.TEST), (other, Mode.TEST))) == {
        account_scope(acme.id, Mode.TEST),
        account_scope(other.id, Mode.TEST),
    }
