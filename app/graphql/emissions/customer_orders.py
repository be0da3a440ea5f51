"""Customer orders in the graph, shaped like the seed's: per-item breakdowns in kgCO2e floats."""

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

import strawberry
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry import relay

from app.emissions import calculators, models
from app.emissions import customer_orders as service
from app.emissions.calculators import (
    EMBODIED_LABEL,
    PACKAGING_LABEL,
    TRANSPORTATION_LABEL,
    USE_LABEL,
    PartLabel,
)
from app.graphql.context import Info
from app.graphql.emissions.estimates import Estimate
from app.graphql.errors import UserError, perform
from app.graphql.relay import (
    filtered_connection_field,
    map_optional,
    node_by_id,
    nodes_loaded_by,
    row_id_of,
)


class Unit(StrEnum):
    kgCO2e = "kgCO2e"  # the seed's spelling, as the value clients already read


EmissionUnit = strawberry.enum(Unit, name="EmissionUnit", description="Unit of an emission.")
EMISSION_UNIT = Unit.kgCO2e
FigureQuality = strawberry.enum(
    calculators.FigureQuality,
    name="FigureQuality",
    description="How a part's figure was obtained: `estimated` from published factors, "
    "`indicative` from typical usage rather than metered use.",
)
MILLIGRAMS_PER_KG = 1_000_000

CustomerOrderStatus = strawberry.enum(models.CustomerOrderStatus, name="CustomerOrderStatus")


class ItemType(StrEnum):
    PRODUCT = "PRODUCT"  # the only kind of item so far, as the seed labels it


CustomerOrderItemType = strawberry.enum(ItemType, name="CustomerOrderItemType")


def _kg(milligrams: int) -> float:
    return milligrams / MILLIGRAMS_PER_KG


@strawberry.type(description="One part of a device's emissions, labelled as the GHG Protocol.")
class EmissionPart:
    description: str
    emission: float = strawberry.field(description="kg CO2e.")
    emission_unit: EmissionUnit  # type: ignore[valid-type]
    ghg_scope: str
    ghg_category: str
    type: FigureQuality  # type: ignore[valid-type]

    @classmethod
    def of(cls, description: str, milligrams: int, label: PartLabel) -> "EmissionPart":
        return cls(
            description=description,
            emission=_kg(milligrams),
            emission_unit=EMISSION_UNIT,
            ghg_scope=label.ghg_scope,
            ghg_category=label.ghg_category,
            type=label.type,
        )


@strawberry.type
class EmissionBreakdown:
    product_embodied_emission: EmissionPart
    packaging: EmissionPart
    transportation: EmissionPart
    product_use: EmissionPart

    @classmethod
    def from_item(cls, item: models.CustomerOrderItem) -> "EmissionBreakdown":
        return cls(
            product_embodied_emission=EmissionPart.of(
                item.embodied_description, item.embodied_mg, EMBODIED_LABEL
            ),
            packaging=EmissionPart.of(
                item.packaging_description, item.packaging_mg, PACKAGING_LABEL
            ),
            transportation=EmissionPart.of(
                item.transportation_description, item.transportation_mg, TRANSPORTATION_LABEL
            ),
            product_use=EmissionPart.of(item.use_description, item.use_mg, USE_LABEL),
        )


@strawberry.type(description="One device of a customer order.")
class CustomerOrderItem:
    device_id: str = strawberry.field(description="The device's catalog productId.")
    product_id: str
    serial_number: str
    type: CustomerOrderItemType  # type: ignore[valid-type]
    tenure_months: int
    weight_kg: Decimal = strawberry.field(description="Shipped weight used for transportation.")
    total_emission: float = strawberry.field(description="kg CO2e: the sum of the four parts.")
    emission_unit: EmissionUnit  # type: ignore[valid-type]
    emission_breakdown: EmissionBreakdown

    @classmethod
    def from_row(cls, row: models.CustomerOrderItem) -> "CustomerOrderItem":
        return cls(
            device_id=row.product_id,
            product_id=row.product_id,
            serial_number=row.serial_number,
            type=ItemType.PRODUCT,
            tenure_months=row.tenure_months,
            weight_kg=Decimal(row.weight_grams) / 1000,
            total_emission=_kg(row.total_emission_mg),
            emission_unit=EMISSION_UNIT,
            emission_breakdown=EmissionBreakdown.from_item(row),
        )


@strawberry.type(description="A customer's rental order of devices, with its emissions.")
class CustomerOrder(relay.Node):
    id: relay.NodeID[str]
    customer_id: str
    order_id: str
    order_date: date
    tenure_start_date: date
    status: CustomerOrderStatus  # type: ignore[valid-type]
    total_emission: float = strawberry.field(description="kg CO2e of all items.")
    emission_unit: EmissionUnit  # type: ignore[valid-type]
    item_count: int
    created_at: datetime
    estimate_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="Every item, in the order sent.")
    async def items(self, info: Info) -> list[CustomerOrderItem]:
        rows = await info.context.loaders.customer_order_items.load(uuid.UUID(self.id))
        return [CustomerOrderItem.from_row(row) for row in rows]

    @strawberry.field(description="The estimate this order produced, to offset it.")
    async def estimate(self, info: Info) -> Estimate | None:
        row = await info.context.loaders.estimate_by_id.load(self.estimate_id)
        return map_optional(Estimate.from_row, row)

    @classmethod
    def from_row(cls, row: models.CustomerOrder) -> "CustomerOrder":
        return cls(
            id=str(row.id),
            customer_id=row.customer_id,
            order_id=row.order_id,
            order_date=row.order_date,
            tenure_start_date=row.tenure_start_date,
            status=row.status,
            total_emission=_kg(row.total_emission_mg),
            emission_unit=EMISSION_UNIT,
            item_count=row.item_count,
            created_at=row.created_at,
            estimate_id=row.estimate_id,
        )

    resolve_nodes = nodes_loaded_by(lambda loaders: loaders.customer_order_by_id)


@strawberry.type
class CustomerOrderConnection(relay.Connection[CustomerOrder]):
    total_count: int


@strawberry.type(description="A device's emissions in one order.")
class DeviceOrderEmission:
    customer_id: str
    order_id: str
    order_date: date
    tenure_start_date: date
    total_emission: float
    emission_unit: EmissionUnit  # type: ignore[valid-type]
    emission: EmissionBreakdown


@strawberry.type(description="A device's history across your customer orders.")
class DeviceEmissions:
    serial_number: str
    number_of_orders: int
    total_emission: float
    emission_unit: EmissionUnit  # type: ignore[valid-type]
    orders: list[DeviceOrderEmission]

    @classmethod
    def from_history(cls, history: service.DeviceHistory) -> "DeviceEmissions":
        return cls(
            serial_number=history.serial_number,
            number_of_orders=len(history.entries),
            total_emission=_kg(sum(item.total_emission_mg for _, item in history.entries)),
            emission_unit=EMISSION_UNIT,
            orders=[
                DeviceOrderEmission(
                    customer_id=order.customer_id,
                    order_id=order.order_id,
                    order_date=order.order_date,
                    tenure_start_date=order.tenure_start_date,
                    total_emission=_kg(item.total_emission_mg),
                    emission_unit=EMISSION_UNIT,
                    emission=EmissionBreakdown.from_item(item),
                )
                for order, item in history.entries
            ],
        )


@strawberry.input
class DeviceConfigInput:
    product_id: str
    serial_number: str
    tenure_months: int
    weight_kg: Decimal | None = strawberry.field(
        default=None, description="Shipped weight of this device, to the gram; else the catalog's."
    )


@strawberry.input
class CustomerOrderItemInput:
    config: DeviceConfigInput


@strawberry.input
class CreateCustomerOrderInput:
    customer_id: str
    order_id: str = strawberry.field(
        description="Unique per customer: sending the same order again returns it unchanged."
    )
    order_date: date
    tenure_start_date: date
    items: list[CustomerOrderItemInput] = strawberry.field(
        description=f"1 to {service.MAX_ITEMS_PER_ORDER:,} devices."
    )


@strawberry.type
class CreateCustomerOrderPayload:
    customer_order: CustomerOrder | None
    user_errors: list[UserError]


@strawberry.input
class CustomerOrderFilter:
    customer_id: str | None = None


@strawberry.type
class CustomerOrderQueries:
    @strawberry.field(description="One of your customer orders, or null.")
    async def customer_order(self, info: Info, id: strawberry.ID) -> CustomerOrder | None:
        info.context.require_principal()
        return await node_by_id(
            info,
            info.context.loaders.customer_order_by_id,
            row_id_of(id, "CustomerOrder"),
            CustomerOrder.from_row,
        )

    customer_orders = filtered_connection_field(
        CustomerOrderConnection,
        CustomerOrderFilter,
        lambda principal, filter: service.customer_orders_of(
            principal, filter.customer_id if filter else None
        ),
        models.CustomerOrder,
        CustomerOrder.from_row,
        description="Your customer orders, newest first.",
    )

    @strawberry.field(description="Every order a device was part of, by its serial number.")
    async def device_emissions(self, info: Info, serial_number: str) -> DeviceEmissions:
        principal = info.context.require_principal()
        async with info.context.reads.session() as session:
            history = await service.device_emissions(session, principal, serial_number)
        return DeviceEmissions.from_history(history)


@strawberry.type
class CustomerOrderMutations:
    @strawberry.mutation(description="Compute and store a customer order's per-item emissions.")
    async def create_customer_order(
        self, info: Info, input: CreateCustomerOrderInput
    ) -> CreateCustomerOrderPayload | None:
        principal = info.context.require_principal()
        spec = service.CustomerOrderSpec(
            customer_id=input.customer_id,
            order_id=input.order_id,
            order_date=input.order_date,
            tenure_start_date=input.tenure_start_date,
            items=[
                service.DeviceConfig(
                    product_id=item.config.product_id,
                    serial_number=item.config.serial_number,
                    tenure_months=item.config.tenure_months,
                    weight_kg=item.config.weight_kg,
                )
                for item in input.items
            ],
        )

        async def create(session: AsyncSession) -> models.CustomerOrder:
            return await service.create_customer_order(session, principal, spec)

        outcome = await perform(info.context.db, create)
        return CreateCustomerOrderPayload(
            customer_order=outcome.map(CustomerOrder.from_row),
            user_errors=outcome.user_errors,
        )
