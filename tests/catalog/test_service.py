"""The catalog's use cases, called directly: validation, scoping and stock arithmetic."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func
from sqlmodel import select

from app.accounts.models import Account, Mode
from app.catalog import service as catalog
from app.catalog.models import Bundle, CreditBatch, Portfolio, PortfolioBundle, Project, ProjectType
from app.db import Database
from app.errors import DomainError, ErrorCode
from app.inventory import service as inventory
from tests.conftest import make_account
from tests.offsets_fixtures import principal_for, seed_catalog


async def _count(db: Database, model: object) -> int:
    async with db.session() as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())  # type: ignore[call-overload]


async def _fails(db: Database, use_case: object) -> DomainError:
    with pytest.raises(DomainError) as caught:
        async with db.transaction() as session:
            await use_case(session)  # type: ignore[operator]
    return caught.value


async def test_create_project_normalises_country_and_text(db: Database, account: Account) -> None:
    async with db.transaction() as session:
        project = await catalog.create_project(
            session,
            principal_for(account),
            name="  Kutch Wind  ",
            project_type=ProjectType.RENEWABLE_ENERGY,
            registry="Gold Standard",
            registry_id="GS-7764",
            country="ind",
        )
    assert project.country == "IN"
    assert project.name == "Kutch Wind"
    assert project.mode is Mode.TEST


async def test_registry_id_is_unique_per_account_and_mode_only(
    db: Database, account: Account
) -> None:
    other = await make_account(db, "other", "Other Ltd")
    kwargs = {
        "name": "Forest",
        "project_type": ProjectType.REFORESTATION,
        "registry": "Verra",
        "registry_id": "VCS-1",
        "country": "BR",
    }
    for owner, mode in ((account, Mode.TEST), (account, Mode.LIVE), (other, Mode.TEST)):
        async with db.transaction() as session:
            await catalog.create_project(session, principal_for(owner, mode), **kwargs)  # type: ignore[arg-type]
    error = await _fails(
        db,
        lambda s: catalog.create_project(s, principal_for(account), **kwargs),  # type: ignore[arg-type]
    )
    assert (error.code, error.field) == (ErrorCode.INVALID_INPUT, "registryId")
    assert await _count(db, Project) == 3


async def test_every_catalog_write_needs_an_admin(db: Database, account: Account) -> None:
    seeded = await seed_catalog(db, account)
    reader = principal_for(account, admin=False)
    attempts = [
        lambda s: catalog.create_project(
            s,
            reader,
            name="X",
            project_type=ProjectType.BIOCHAR,
            registry="Puro",
            registry_id="P-1",
            country="VN",
        ),
        lambda s: inventory.add_stock(
            s,
            reader,
            project_id=seeded.forest,
            vintage=2024,
            serial_prefix="X-1",
            quantity_grams=1,
        ),
        lambda s: catalog.create_bundle(
            s,
            reader,
            name="B",
            unit_price=Decimal(1),
            currency="USD",
            project_ids=[seeded.forest],
        ),
        lambda s: catalog.create_portfolio(
            s, reader, name="P", weights=[(seeded.cheap, Decimal(100))]
        ),
        lambda s: catalog.set_default_portfolio(s, reader, seeded.portfolio),
    ]
    for attempt in attempts:
        assert (await _fails(db, attempt)).code is ErrorCode.FORBIDDEN
    assert await _count(db, Project) == 2
    assert await _count(db, CreditBatch) == 3
    assert await _count(db, Bundle) == 2
    assert await _count(db, Portfolio) == 1


async def test_weights_are_stored_in_basis_points(db: Database, account: Account) -> None:
    seeded = await seed_catalog(db, account)
    async with db.transaction() as session:
        created = await catalog.create_portfolio(
            session,
            principal_for(account),
            name="Thirds",
            weights=[(seeded.cheap, Decimal("33.33")), (seeded.premium, Decimal("66.67"))],
        )
    assert [w.weight_bp for w in created.bundles] == [3333, 6667]
    async with db.session() as session:
        links = (
            await session.exec(
                select(PortfolioBundle).where(PortfolioBundle.portfolio_id == created.portfolio.id)
            )
        ).all()
    assert sorted(link.weight_bp for link in links) == [3333, 6667]
    assert created.portfolio.currency == "USD"
    assert created.portfolio.is_default is False


async def test_set_default_portfolio_keeps_exactly_one_default(
    db: Database, account: Account
) -> None:
    seeded = await seed_catalog(db, account)
    principal = principal_for(account)
    async with db.transaction() as session:
        second = await catalog.create_portfolio(
            session,
            principal,
            name="All premium",
            weights=[(seeded.premium, Decimal(100))],
            make_default=True,
        )
    async with db.session() as session:
        chosen = await catalog.portfolio_for_order(session, principal, None)
        defaults = (
            await session.exec(select(Portfolio).where(Portfolio.is_default == True))  # noqa: E712
        ).all()
    assert chosen.portfolio.id == second.portfolio.id
    assert [p.id for p in defaults] == [second.portfolio.id]
    async with db.transaction() as session:
        await catalog.set_default_portfolio(session, principal, seeded.portfolio)
    async with db.session() as session:
        chosen = await catalog.portfolio_for_order(session, principal, None)
    assert chosen.portfolio.id == seeded.portfolio
    assert [wb.weight_bp for wb in chosen.bundles] == [6000, 4000]


async def test_default_portfolio_is_per_mode(db: Database, account: Account) -> None:
    await seed_catalog(db, account, Mode.TEST)
    error = await _fails(
        db, lambda s: catalog.portfolio_for_order(s, principal_for(account, Mode.LIVE), None)
    )
    assert (error.code, error.field) == (ErrorCode.NOT_FOUND, "portfolioId")


async def test_credit_batches_of_projects_oldest_vintage_first(
    db: Database, account: Account
) -> None:
    seeded = await seed_catalog(db, account)
    async with db.session() as session:
        grouped = await catalog.credit_batches_of_projects(
            session, seeded.principal, [seeded.forest, seeded.dac]
        )
    assert [b.vintage for b in grouped[seeded.forest]] == [2020, 2022]
    assert [b.serial_prefix for b in grouped[seeded.dac]] == ["PURO-2002-2023"]
    assert all(b.remaining_grams == b.quantity_grams for b in grouped[seeded.forest])


async def test_create_bundle_deduplicates_projects(db: Database, account: Account) -> None:
    seeded = await seed_catalog(db, account)
    async with db.transaction() as session:
        _, project_ids = await catalog.create_bundle(
            session,
            seeded.principal,
            name="Mixed",
            unit_price=Decimal("12.5"),
            currency="usd",
            project_ids=[seeded.forest, seeded.dac, seeded.forest],
        )
    assert project_ids == [seeded.forest, seeded.dac]


async def test_unknown_project_field_points_at_the_input_position(
    db: Database, account: Account
) -> None:
    seeded = await seed_catalog(db, account)
    error = await _fails(
        db,
        lambda s: catalog.create_bundle(
            s,
            seeded.principal,
            name="Mixed",
            unit_price=Decimal(10),
            currency="USD",
            project_ids=[seeded.forest, seeded.forest, uuid.uuid4()],
        ),
    )
    # The third id of the input is the unknown one, duplicates before it notwithstanding.
    assert (error.code, error.field) == (ErrorCode.NOT_FOUND, "projectIds.2")
    assert await _count(db, Bundle) == 2
