"""Demo inventory: plausible (fictional) projects, batches, bundles and portfolios in USD.

The project names and registry ids are invented for demonstrations; they stand for no real
project, and their certificates retire nothing on any real registry.
"""

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.models import Account, Mode
from app.accounts.service import Principal
from app.catalog import service as catalog
from app.catalog.models import Project, ProjectType
from app.inventory import service as inventory
from app.units import GRAMS_PER_TONNE


@dataclass(frozen=True)
class DemoProject:
    key: str
    name: str
    project_type: ProjectType
    registry: str
    registry_id: str
    country: str
    description: str
    # (vintage, tonnes) of each batch
    batches: tuple[tuple[int, int], ...]


PROJECTS = (
    DemoProject(
        "forest", "Rio Doce Atlantic Forest Restoration", ProjectType.REFORESTATION, "Verra",
        "VCS-4821", "BR", "Native-species planting on degraded pasture in Minas Gerais.",
        ((2021, 1200), (2022, 1800), (2023, 2500)),
    ),
    DemoProject(
        "peat", "Cairngorms Peatland and Native Woodland", ProjectType.AFFORESTATION,
        "UK Woodland Carbon Code", "WCC-102-5531", "GB",
        "New native woodland and rewetted peat on former grazing land.",
        ((2020, 600), (2023, 900)),
    ),
    DemoProject(
        "mangrove", "Sundarbans Mangrove Blue Carbon", ProjectType.BLUE_CARBON, "Verra",
        "VCS-3309", "BD", "Community-led mangrove restoration along tidal channels.",
        ((2022, 1500), (2024, 2000)),
    ),
    DemoProject(
        "dac", "Hellisheidi Direct Air Capture", ProjectType.DIRECT_AIR_CAPTURE, "Puro.earth",
        "PURO-DAC-0193", "IS", "CO2 captured from air and mineralised in basalt.",
        ((2023, 150), (2024, 250)),
    ),
    DemoProject(
        "biochar", "Mekong Delta Rice Husk Biochar", ProjectType.BIOCHAR, "Puro.earth",
        "PURO-BC-0457", "VN", "Rice husks pyrolysed into biochar applied to farmland.",
        ((2022, 800), (2023, 1100)),
    ),
    DemoProject(
        "stoves", "Lake Victoria Efficient Cookstoves", ProjectType.COOKSTOVES, "Gold Standard",
        "GS-11873", "UG", "Efficient stoves that cut household firewood use.",
        ((2019, 3000), (2021, 4000), (2022, 5000)),
    ),
    DemoProject(
        "wind", "Kutch Coastal Wind Farm", ProjectType.RENEWABLE_ENERGY, "Gold Standard",
        "GS-7764", "IN", "Grid-connected wind power displacing coal generation.",
        ((2020, 5000), (2022, 6000)),
    ),
)  # fmt: skip

# (name, USD per tonne, project keys, description)
BUNDLES = (
    ("Nature-based removals", "18.50", ("forest", "peat", "mangrove"),
     "Forests, peat and mangroves drawing carbon down."),
    ("Durable removals", "245.00", ("dac", "biochar"),
     "Carbon stored for centuries or longer."),
    ("Community avoidance", "9.75", ("stoves", "wind"),
     "Emissions avoided with clean cooking and wind power."),
)  # fmt: skip

# (name, default?, [(bundle name, weight %)])
PORTFOLIOS = (
    ("Balanced", True,
     (("Nature-based removals", "50"), ("Durable removals", "20"), ("Community avoidance", "30"))),
    ("Removals only", False, (("Nature-based removals", "60"), ("Durable removals", "40"))),
)  # fmt: skip


async def seed_demo_catalog(session: AsyncSession, account: Account, mode: Mode) -> bool:
    """Seed the demo inventory for one mode unless the account already has projects there."""
    has_projects = (
        await session.exec(
            select(Project.id).where(Project.account_id == account.id, Project.mode == mode)
        )
    ).first()
    if has_projects is not None:
        return False
    # The seed acts as an admin of the account; no key is involved.
    principal = Principal(account=account, mode=mode, api_key_id=uuid.UUID(int=0), is_admin=True)
    project_ids: dict[str, uuid.UUID] = {}
    for spec in PROJECTS:
        project = await catalog.create_project(
            session,
            principal,
            name=spec.name,
            project_type=spec.project_type,
            registry=spec.registry,
            registry_id=spec.registry_id,
            country=spec.country,
            description=spec.description,
        )
        project_ids[spec.key] = project.id
        for vintage, tonnes in spec.batches:
            await inventory.add_stock(
                session,
                principal,
                project_id=project.id,
                vintage=vintage,
                serial_prefix=f"{spec.registry_id}-{vintage}",
                quantity_grams=tonnes * GRAMS_PER_TONNE,
            )
    bundle_ids: dict[str, uuid.UUID] = {}
    for name, price, keys, description in BUNDLES:
        bundle, _ = await catalog.create_bundle(
            session,
            principal,
            name=name,
            unit_price=Decimal(price),
            currency="USD",
            project_ids=[project_ids[key] for key in keys],
            description=description,
        )
        bundle_ids[name] = bundle.id
    for name, is_default, weights in PORTFOLIOS:
        await catalog.create_portfolio(
            session,
            principal,
            name=name,
            weights=[(bundle_ids[bundle], Decimal(weight)) for bundle, weight in weights],
            make_default=is_default,
        )
    return True
