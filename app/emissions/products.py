"""The product catalog: devices with the footprint data the customer-order method needs."""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.accounts.service import Principal
from app.db import utcnow
from app.emissions.calculators import (
    FreightMode,
    ProductFootprint,
    country_alpha2,
    validate_product_footprint,
)
from app.emissions.models import Product
from app.emissions.service import calculation_errors
from app.errors import Forbidden, InvalidInput, NotFound
from app.text import clean_text

MAX_TEXT_LENGTH = 200
MAX_SOURCE_LENGTH = 1000
SECONDS_PER_HOUR = 3600
# Stored integers stay well inside a signed 64-bit column whatever is added up later.
MAX_STORED_INTEGER = 2**53


@dataclass(frozen=True)
class ProductSpec:
    """A product as an admin describes it, in the units of the API (kg, km, W, hours)."""

    product_id: str
    name: str
    embodied_emission_kg: Decimal  # the whole lifetime's manufacturing footprint
    lifetime_months: int
    weight_kg: Decimal
    packaging_factor_id: str  # a DESNZ material factor id, e.g. desnz2025:19_506_5156_15_1
    packaging_mass_kg: Decimal
    shipping_mode: str
    shipping_distance_km: Decimal
    power_watts: Decimal
    daily_use_hours: Decimal
    grid_country: str
    source: str = ""


def footprint_of(product: Product) -> ProductFootprint:
    """The calculator's view of a stored product, back in kg, km, W and hours, exactly."""
    return ProductFootprint(
        lifetime_embodied_kgco2e=Decimal(product.lifetime_embodied_grams) / 1000,
        lifetime_months=product.lifetime_months,
        default_weight_kg=Decimal(product.weight_grams) / 1000,
        packaging_factor_id=product.packaging_factor_id,
        packaging_mass_kg=Decimal(product.packaging_grams) / 1000,
        shipping_mode=FreightMode(product.shipping_mode),
        shipping_distance_km=Decimal(product.shipping_distance_metres) / 1000,
        power_watts=Decimal(product.power_milliwatts) / 1000,
        daily_use_hours=Decimal(product.daily_use_seconds) / SECONDS_PER_HOUR,
        grid_country=product.grid_country,
    )


def whole_units(value: Decimal, scale: int, field: str, unit: str) -> int:
    """`value * scale` as an integer, or InvalidInput: stored figures are exact integers."""
    if not value.is_finite():
        raise InvalidInput("Must be a finite number.", field)
    scaled = value * scale
    if scaled != scaled.to_integral_value():
        raise InvalidInput(f"Must be a whole number of {unit}.", field)
    if abs(scaled) > MAX_STORED_INTEGER:
        raise InvalidInput("Too large.", field)
    return int(scaled)


def product_columns(spec: ProductSpec) -> dict[str, Any]:
    """The product's column values, or the first problem with the spec as a domain error."""
    try:
        mode = FreightMode(spec.shipping_mode.strip().upper())
    except ValueError:
        expected = ", ".join(FreightMode)
        raise InvalidInput(
            f"Unknown shipping mode; expected one of {expected}.", "shipping.mode"
        ) from None
    footprint = ProductFootprint(
        lifetime_embodied_kgco2e=spec.embodied_emission_kg,
        lifetime_months=spec.lifetime_months,
        default_weight_kg=spec.weight_kg,
        packaging_factor_id=spec.packaging_factor_id.strip(),
        packaging_mass_kg=spec.packaging_mass_kg,
        shipping_mode=mode,
        shipping_distance_km=spec.shipping_distance_km,
        power_watts=spec.power_watts,
        daily_use_hours=spec.daily_use_hours,
        grid_country=spec.grid_country,
    )
    with calculation_errors():
        validate_product_footprint(footprint)
        country = country_alpha2(spec.grid_country, "gridCountry")
    return {
        "product_id": clean_text(spec.product_id, "productId", max_length=MAX_TEXT_LENGTH),
        "name": clean_text(spec.name, "name", max_length=MAX_TEXT_LENGTH),
        "lifetime_embodied_grams": whole_units(
            spec.embodied_emission_kg, 1000, "embodiedEmissionKg", "grams"
        ),
        "lifetime_months": spec.lifetime_months,
        "weight_grams": whole_units(spec.weight_kg, 1000, "weightKg", "grams"),
        "packaging_factor_id": footprint.packaging_factor_id,
        "packaging_grams": whole_units(spec.packaging_mass_kg, 1000, "packaging.massKg", "grams"),
        "shipping_mode": mode.value,
        "shipping_distance_metres": whole_units(
            spec.shipping_distance_km, 1000, "shipping.distanceKm", "metres"
        ),
        "power_milliwatts": whole_units(spec.power_watts, 1000, "powerWatts", "milliwatts"),
        "daily_use_seconds": whole_units(
            spec.daily_use_hours, SECONDS_PER_HOUR, "dailyUseHours", "seconds"
        ),
        "grid_country": country,
        "source": clean_text(spec.source, "source", max_length=MAX_SOURCE_LENGTH, required=False),
    }


def _update(product: Product, columns: dict[str, Any]) -> Product:
    for name, value in columns.items():
        setattr(product, name, value)
    product.updated_at = utcnow()
    return product


def products_of(principal: Principal) -> SelectOfScalar[Product]:
    """The catalog of the principal's account and mode (shared by its subaccounts)."""
    return select(Product).where(
        Product.account_id == principal.account_id, Product.mode == principal.mode
    )


async def products_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> Sequence[Product]:
    return (await session.exec(products_of(principal).where(col(Product.id).in_(ids)))).all()


async def upsert_product(session: AsyncSession, principal: Principal, spec: ProductSpec) -> Product:
    """Create the product with `spec.product_id`, or replace its data (admin only).

    Orders already placed keep the figures they were computed with.
    """
    principal.require_admin()
    if principal.subaccount is not None:
        raise Forbidden("The catalog belongs to the account: send no X-Subaccount-Id.")
    columns = product_columns(spec)
    existing = (
        await session.exec(
            products_of(principal).where(Product.product_id == columns["product_id"])
        )
    ).first()
    if existing is not None:
        _update(existing, columns)
        await session.flush()
        return existing
    product = Product(account_id=principal.account_id, mode=principal.mode, **columns)
    try:
        # Added inside the savepoint: begin_nested() flushes what is pending before it begins,
        # and a failed flush there would roll back the whole transaction, not the savepoint.
        async with session.begin_nested():
            session.add(product)
            await session.flush()
    except IntegrityError:
        # Another request created it meanwhile (the rollback dropped ours from the session):
        # this upsert becomes the update.
        existing = (
            await session.exec(
                products_of(principal).where(Product.product_id == columns["product_id"])
            )
        ).one()
        _update(existing, columns)
        await session.flush()
        return existing
    return product


async def get_product(session: AsyncSession, principal: Principal, product_id: str) -> Product:
    product = (
        await session.exec(products_of(principal).where(Product.product_id == product_id))
    ).first()
    if product is None:
        raise NotFound(f"No product {product_id!r} in the catalog.", "productId")
    return product


async def products_by_product_id(
    session: AsyncSession, principal: Principal, product_ids: Iterable[str]
) -> dict[str, Product]:
    """The catalog's products among `product_ids`, by their external id, in one query."""
    wanted = list(set(product_ids))
    if not wanted:
        return {}
    rows = await session.exec(products_of(principal).where(col(Product.product_id).in_(wanted)))
    return {row.product_id: row for row in rows}
