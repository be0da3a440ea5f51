"""Factories for catalog and offsetting tests: a small, known catalog set up through the services.

`seed_catalog` builds, for one account and mode:

- project "forest" (Verra VCS-1001, BR) with batches vintage 2022 (2 t, prefix `VCS-1001-2022`)
  and then vintage 2020 (1 t, prefix `VCS-1001-2020`) — created newest first on purpose, so
  "oldest vintage first" can't pass by accident of insertion order;
- project "dac" (Puro.earth PURO-2002, IS) with one batch vintage 2023 (1 t, `PURO-2002-2023`);
- bundle "cheap" at USD 10.00 / t over forest, bundle "premium" at USD 25.00 / t over dac;
- portfolio "Default mix" 60 % cheap / 40 % premium, the default.

So 1 t at the default portfolio is 600 kg cheap ($6.00) + 400 kg premium ($10.00) = $16.00.
`fulfil(db, settings)` runs the fulfilment pass the background worker would run.
"""

import uuid
from dataclasses import dataclass
from decimal import Decimal

from strawberry import relay

from app.accounts import service as accounts
from app.accounts.models import Account, Mode, Subaccount
from app.accounts.service import Principal
from app.catalog import service as catalog
from app.catalog.models import ProjectType
from app.config import Settings
from app.db import Database
from app.inventory import service as inventory
from app.offsets import service as offsets
from app.offsets.fulfilment import FulfilmentResult, fulfil_pending
from app.offsets.models import OffsetOrder
from app.units import GRAMS_PER_TONNE

TONNE = GRAMS_PER_TONNE
CHEAP_PRICE = Decimal("10.00")
PREMIUM_PRICE = Decimal("25.00")


def gid(type_name: str, row_id: uuid.UUID | str) -> str:
    """The Relay global id of a row, as the API shows it."""
    return str(relay.GlobalID(type_name, str(row_id)))


def row_id(global_id: str) -> uuid.UUID:
    return uuid.UUID(relay.GlobalID.from_id(global_id).node_id)


def principal_for(
    account: Account,
    mode: Mode = Mode.TEST,
    *,
    admin: bool = True,
    subaccount: Subaccount | None = None,
) -> Principal:
    """A principal for service-level setup (no API key involved)."""
    return Principal(
        account=account,
        mode=mode,
        api_key_id=uuid.UUID(int=0),
        is_admin=admin,
        subaccount=subaccount,
    )


@dataclass
class SeededCatalog:
    account: Account
    mode: Mode
    forest: uuid.UUID
    dac: uuid.UUID
    batches: dict[str, uuid.UUID]
    cheap: uuid.UUID
    premium: uuid.UUID
    portfolio: uuid.UUID

    @property
    def principal(self) -> Principal:
        return principal_for(self.account, self.mode)

    @property
    def portfolio_gid(self) -> str:
        return gid("Portfolio", self.portfolio)

    @property
    def cheap_gid(self) -> str:
        return gid("Bundle", self.cheap)

    @property
    def premium_gid(self) -> str:
        return gid("Bundle", self.premium)


async def seed_catalog(
    db: Database,
    account: Account,
    mode: Mode = Mode.TEST,
    *,
    forest_tonnes: tuple[int, int] = (2, 1),
    dac_tonnes: int = 1,
    default: bool = True,
) -> SeededCatalog:
    """The small catalog described in the module docstring; ids of everything created."""
    principal = principal_for(account, mode)
    async with db.transaction() as session:
        forest = await catalog.create_project(
            session,
            principal,
            name="Rio Doce Forest",
            project_type=ProjectType.REFORESTATION,
            registry="Verra",
            registry_id="VCS-1001",
            country="BR",
            description="Native species on old pasture.",
        )
        dac = await catalog.create_project(
            session,
            principal,
            name="Hellisheidi DAC",
            project_type=ProjectType.DIRECT_AIR_CAPTURE,
            registry="Puro.earth",
            registry_id="PURO-2002",
            country="IS",
        )
        batches: dict[str, uuid.UUID] = {}
        for key, project, vintage, tonnes in (
            ("forest-2022", forest.id, 2022, forest_tonnes[0]),
            ("forest-2020", forest.id, 2020, forest_tonnes[1]),
            ("dac-2023", dac.id, 2023, dac_tonnes),
        ):
            registry_id = "VCS-1001" if project == forest.id else "PURO-2002"
            batch = await inventory.add_stock(
                session,
                principal,
                project_id=project,
                vintage=vintage,
                serial_prefix=f"{registry_id}-{vintage}",
                quantity_grams=tonnes * TONNE,
            )
            batches[key] = batch.id
        cheap, _ = await catalog.create_bundle(
            session,
            principal,
            name="Cheap forest",
            unit_price=CHEAP_PRICE,
            currency="USD",
            project_ids=[forest.id],
        )
        premium, _ = await catalog.create_bundle(
            session,
            principal,
            name="Premium DAC",
            unit_price=PREMIUM_PRICE,
            currency="USD",
            project_ids=[dac.id],
        )
        portfolio = await catalog.create_portfolio(
            session,
            principal,
            name="Default mix",
            weights=[(cheap.id, Decimal(60)), (premium.id, Decimal(40))],
            make_default=default,
        )
    return SeededCatalog(
        account, mode, forest.id, dac.id, batches, cheap.id, premium.id, portfolio.portfolio.id
    )


async def make_subaccount(
    db: Database, account: Account, mode: Mode = Mode.TEST, name: str = "Client A"
) -> Subaccount:
    async with db.transaction() as session:
        return await accounts.create_subaccount(
            session, principal_for(account, mode, admin=False), name=name
        )


async def place_order(
    db: Database,
    account: Account,
    grams: int,
    mode: Mode = Mode.TEST,
    *,
    subaccount: Subaccount | None = None,
    **options: object,
) -> OffsetOrder:
    """A PLACED order through the service (setup only; the API path is tested elsewhere)."""
    principal = principal_for(account, mode, admin=False, subaccount=subaccount)
    async with db.transaction() as session:
        return await offsets.create_order_by_mass(
            session,
            principal,
            grams,
            offsets.OrderOptions(**options),  # type: ignore[arg-type]
        )


async def fulfil(db: Database, settings: Settings) -> FulfilmentResult:
    """One pass of the fulfilment worker, in the test's own task."""
    return await fulfil_pending(db, settings.secret_key.get_secret_value())


async def stock_of_tonnes(db: Database, principal: Principal, batches: list[int]) -> None:
    """One project whose batches hold `batches` tonnes (vintages 2020, 2021, …), one bundle at
    $10/t, and a default portfolio of it."""
    async with db.transaction() as session:
        project = await catalog.create_project(
            session,
            principal,
            name="Stock",
            project_type=ProjectType.BIOCHAR,
            registry="Puro.earth",
            registry_id="P-1",
            country="FI",
        )
        for index, tonnes in enumerate(batches):
            await inventory.add_stock(
                session,
                principal,
                project_id=project.id,
                vintage=2020 + index,
                serial_prefix=f"P-1-{2020 + index}",
                quantity_grams=tonnes * TONNE,
            )
        bundle, _ = await catalog.create_bundle(
            session,
            principal,
            name="Biochar",
            unit_price=Decimal("10.00"),
            currency="USD",
            project_ids=[project.id],
        )
        await catalog.create_portfolio(
            session, principal, name="All", weights=[(bundle.id, Decimal(100))], make_default=True
        )


async def place_one_tonne(db: Database, principal: Principal, key: str | None = None) -> uuid.UUID:
    async with db.transaction() as session:
        order = await offsets.create_order_by_mass(
            session, principal, TONNE, offsets.OrderOptions(idempotency_key=key)
        )
        return order.id
