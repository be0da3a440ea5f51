"""A demo catalog of a dozen rented electronics, seeded for the demo account in both modes.

Only the laptop's footprint is taken from a published figure (the seed's worked example); the
others are round typical values for their category, and their `source` says so.
"""

import uuid
from decimal import Decimal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.models import Mode
from app.emissions.models import Product
from app.emissions.products import ProductSpec, product_columns

BOARD = "desnz2025:19_506_5156_15_1"  # Paper and board: board, primary material production
TYPICAL = (
    "Typical value for the category, not a manufacturer figure: embodied footprint, weight, "
    "packaging, shipping leg, power draw and daily hours are round illustrative assumptions."
)


def _product(
    product_id: str,
    name: str,
    embodied_kg: str,
    lifetime_months: int,
    weight_kg: str,
    packaging_kg: str,
    shipping: tuple[str, int],
    power_watts: str,
    daily_hours: str,
    source: str = TYPICAL,
) -> ProductSpec:
    return ProductSpec(
        product_id=product_id,
        name=name,
        embodied_emission_kg=Decimal(embodied_kg),
        lifetime_months=lifetime_months,
        weight_kg=Decimal(weight_kg),
        packaging_factor_id=BOARD,
        packaging_mass_kg=Decimal(packaging_kg),
        shipping_mode=shipping[0],
        shipping_distance_km=Decimal(shipping[1]),
        power_watts=Decimal(power_watts),
        daily_use_hours=Decimal(daily_hours),
        grid_country="GB",
        source=source,
    )


DEMO_PRODUCTS = (
    _product(
        "macbook-air-13-m3",
        "Apple MacBook Air 13 M3 (8C CPU + 8C GPU + 16C NE + 8GB)",
        "109.35",
        48,
        "1.24",
        "0.5",
        ("AIR", 9_500),
        "10.6",
        "8",
        source=(
            "Embodied 109.35 kgCO2e over 48 months: the seed's published worked example (6.834375 "
            "kg for 3 months). Power 10.6 W x 8 h/day gives its 25.65 kg lifetime use phase on "
            "the UK grid (25.652 kg). Weight 1.24 kg: Apple's specification. Packaging and "
            "shipping leg: typical assumptions."
        ),
    ),
    _product("laptop-14-business", "14-inch business laptop", "250", 48, "1.4", "0.6",
             ("SEA", 19_000), "15", "8"),
    _product("smartphone-6-1", "6.1-inch smartphone", "55", 36, "0.19", "0.15",
             ("AIR", 9_500), "2", "6"),
    _product("tablet-11", "11-inch tablet", "80", 36, "0.5", "0.3", ("AIR", 9_500), "5", "4"),
    _product("monitor-27", "27-inch QHD monitor", "250", 60, "6.5", "2", ("SEA", 19_000),
             "25", "8"),
    _product("wifi-router", "Wi-Fi 6 router", "40", 60, "0.6", "0.4", ("SEA", 19_000),
             "8", "24"),
    _product("laser-printer", "Small-office laser printer", "150", 60, "12", "2.5",
             ("SEA", 19_000), "30", "8"),
    _product("desktop-sff", "Small form factor desktop PC", "300", 60, "5", "1.5",
             ("SEA", 19_000), "40", "8"),
    _product("usb-c-dock", "USB-C docking station", "30", 60, "0.5", "0.3", ("SEA", 19_000),
             "10", "8"),
    _product("wireless-headset", "Wireless headset", "10", 36, "0.3", "0.2", ("SEA", 19_000),
             "0.5", "4"),
    _product("keyboard-mouse", "Wireless keyboard and mouse set", "8", 60, "0.8", "0.3",
             ("SEA", 19_000), "0.2", "8"),
    _product("projector", "Meeting-room projector", "120", 60, "3", "1", ("SEA", 19_000),
             "250", "2"),
)  # fmt: skip


async def seed_demo_products(session: AsyncSession, account_id: uuid.UUID, mode: Mode) -> int:
    """Add the demo products the account's catalog lacks in `mode`; returns how many."""
    existing = set(
        (
            await session.exec(
                select(Product.product_id).where(
                    Product.account_id == account_id,
                    Product.mode == mode,
                    col(Product.product_id).in_([spec.product_id for spec in DEMO_PRODUCTS]),
                )
            )
        ).all()
    )
    missing = [spec for spec in DEMO_PRODUCTS if spec.product_id not in existing]
    for spec in missing:
        session.add(Product(account_id=account_id, mode=mode, **product_columns(spec)))
    await session.flush()
    return len(missing)
