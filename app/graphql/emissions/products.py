"""The product catalog in the graph: `upsertProduct` (admin), `products` and `product`."""

from datetime import datetime
from decimal import Decimal

import strawberry
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry import relay

from app.emissions import models
from app.emissions import products as catalog
from app.emissions.factors import UnknownFactorError, get_factor
from app.graphql.context import Info
from app.graphql.emissions.vocabulary import FreightMode
from app.graphql.errors import UserError, perform
from app.graphql.money import Mass
from app.graphql.relay import connection_field, map_optional, nodes_loaded_by


@strawberry.type
class ProductPackaging:
    factor_id: str = strawberry.field(description="The DESNZ material factor of the packaging.")
    material: str
    mass: Mass


@strawberry.type
class ProductShipping:
    mode: FreightMode  # type: ignore[valid-type]
    distance_km: Decimal


@strawberry.type(description="A device of the catalog and its footprint data.")
class Product(relay.Node):
    id: relay.NodeID[str]
    product_id: str = strawberry.field(description="Your id for the product, used in orders.")
    name: str
    embodied_emission: Mass = strawberry.field(
        description="Manufacturing footprint over the device's whole lifetime (kg CO2e)."
    )
    lifetime_months: int
    weight: Mass = strawberry.field(description="Default shipped weight of one device.")
    packaging: ProductPackaging
    shipping: ProductShipping
    power_watts: Decimal
    daily_use_hours: Decimal
    grid_country: str = strawberry.field(description="ISO 3166-1 alpha-2 of the use phase.")
    source: str = strawberry.field(description="Where the figures come from.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: models.Product) -> "Product":
        footprint = catalog.footprint_of(row)
        try:
            material = get_factor(row.packaging_factor_id).activity
        except UnknownFactorError:
            material = ""
        return cls(
            id=str(row.id),
            product_id=row.product_id,
            name=row.name,
            embodied_emission=Mass.from_grams(row.lifetime_embodied_grams),
            lifetime_months=row.lifetime_months,
            weight=Mass.from_grams(row.weight_grams),
            packaging=ProductPackaging(
                factor_id=row.packaging_factor_id,
                material=material,
                mass=Mass.from_grams(row.packaging_grams),
            ),
            shipping=ProductShipping(
                mode=FreightMode(row.shipping_mode), distance_km=footprint.shipping_distance_km
            ),
            power_watts=footprint.power_watts,
            daily_use_hours=footprint.daily_use_hours,
            grid_country=row.grid_country,
            source=row.source,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    resolve_nodes = nodes_loaded_by(lambda loaders: loaders.product_by_id)


@strawberry.type
class ProductConnection(relay.Connection[Product]):
    total_count: int


@strawberry.input
class ProductPackagingInput:
    factor_id: str = strawberry.field(
        description="A DESNZ material factor id, e.g. desnz2025:19_506_5156_15_1 (board)."
    )
    mass_kg: Decimal


@strawberry.input
class ProductShippingInput:
    mode: FreightMode  # type: ignore[valid-type]
    distance_km: Decimal


@strawberry.input
class UpsertProductInput:
    product_id: str
    name: str
    embodied_emission_kg: Decimal = strawberry.field(
        description="Lifetime manufacturing footprint, kg CO2e, to the gram."
    )
    lifetime_months: int
    weight_kg: Decimal = strawberry.field(description="Default device weight, to the gram.")
    packaging: ProductPackagingInput
    shipping: ProductShippingInput
    power_watts: Decimal
    daily_use_hours: Decimal
    grid_country: str = strawberry.field(description="ISO 3166-1 code of the use phase's grid.")
    source: str = ""


@strawberry.type
class UpsertProductPayload:
    product: Product | None
    user_errors: list[UserError]


@strawberry.type
class ProductQueries:
    products = connection_field(
        ProductConnection,
        catalog.products_of,
        models.Product,
        Product.from_row,
        description="The catalog of the account in the key's mode, newest first.",
    )

    @strawberry.field(description="A catalog product by your productId, or null.")
    async def product(self, info: Info, product_id: str) -> Product | None:
        principal = info.context.require_principal()
        async with info.context.reads.session() as session:
            rows = await catalog.products_by_product_id(session, principal, [product_id])
        row = rows.get(product_id)
        return map_optional(Product.from_row, row)


@strawberry.type
class ProductMutations:
    @strawberry.mutation(description="Create or replace a catalog product (admin keys only).")
    async def upsert_product(
        self, info: Info, input: UpsertProductInput
    ) -> UpsertProductPayload | None:
        principal = info.context.require_principal()
        spec = catalog.ProductSpec(
            product_id=input.product_id,
            name=input.name,
            embodied_emission_kg=input.embodied_emission_kg,
            lifetime_months=input.lifetime_months,
            weight_kg=input.weight_kg,
            packaging_factor_id=input.packaging.factor_id,
            packaging_mass_kg=input.packaging.mass_kg,
            shipping_mode=input.shipping.mode,
            shipping_distance_km=input.shipping.distance_km,
            power_watts=input.power_watts,
            daily_use_hours=input.daily_use_hours,
            grid_country=input.grid_country,
            source=input.source,
        )

        async def upsert(session: AsyncSession) -> models.Product:
            return await catalog.upsert_product(session, principal, spec)

        outcome = await perform(info.context.db, upsert)
        return UpsertProductPayload(
            product=outcome.map(Product.from_row),
            user_errors=outcome.user_errors,
        )
