"""Offsetting in the graph: quotes, orders, allocations, history and certificates."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry import relay
from strawberry.scalars import JSON

from app.emissions import service as emissions
from app.events.changes import OrderStateChanged
from app.graphql.catalog import Bundle, CreditBatch, Portfolio, Project, percent
from app.graphql.context import Context, Info
from app.graphql.emissions.estimates import Estimate
from app.graphql.emissions.vocabulary import VehicleType
from app.graphql.errors import Outcome, UserError, perform, perform_staged
from app.graphql.money import Mass, MassInput, Money, MoneyInput
from app.graphql.plans import Loaded, from_fields, plannable, row_readers
from app.graphql.relay import (
    filtered_connection_field,
    map_optional,
    node_by_id,
    nodes_loaded_by,
    parse_global_id,
    plannable_connection,
    row_id_of,
)
from app.group_commit import Staged
from app.offsets import models
from app.offsets import service as offsets
from app.text import readable_json

if TYPE_CHECKING:
    from app.graphql.webhooks import WebhookDelivery

OrderState = strawberry.enum(models.OrderState, name="OrderState")


@strawberry.type
class QuoteBundle:
    bundle: Bundle
    weight: Decimal = strawberry.field(description="Percentage of the portfolio.")
    mass: Mass
    unit_price: Money = strawberry.field(description="Price of one tonne.")
    cost: Money
    inventory_sufficient: bool = strawberry.field(
        description="Whether the bundle's unallocated stock covers this mass now."
    )


@strawberry.type
class Quote:
    mass: Mass
    total_cost: Money = strawberry.field(description="The sum of the bundles' costs, exactly.")
    portfolio: Portfolio
    bundles: list[QuoteBundle]
    inventory_sufficient: bool

    @classmethod
    def from_domain(cls, quote: offsets.Quote) -> "Quote":
        return cls(
            mass=Mass.from_grams(quote.mass_grams),
            total_cost=Money.from_minor_units(quote.total_cost_minor, quote.currency),
            portfolio=Portfolio.from_row(quote.portfolio),
            bundles=[
                QuoteBundle(
                    bundle=Bundle.from_row(line.bundle),
                    weight=percent(line.weight_bp),
                    mass=Mass.from_grams(line.mass_grams),
                    unit_price=Money.from_minor_units(line.unit_price_minor, quote.currency),
                    cost=Money.from_minor_units(line.cost_minor, quote.currency),
                    inventory_sufficient=line.inventory_sufficient,
                )
                for line in quote.lines
            ],
            inventory_sufficient=quote.inventory_sufficient,
        )


@strawberry.type
class QuotePayload:
    quote: Quote | None
    user_errors: list[UserError]


@strawberry.type
class Allocation:
    mass: Mass
    serial_range: str = strawberry.field(
        description="Registry serials retired: `<batch serial prefix>-<first>-<last>`."
    )
    bundle: Bundle
    project: Project
    credit_batch: CreditBatch

    @classmethod
    def from_detail(cls, detail: offsets.AllocationDetail) -> "Allocation":
        return cls(
            mass=Mass.from_grams(detail.mass_grams),
            serial_range=detail.serial_range,
            bundle=Bundle.from_row(detail.bundle),
            project=Project.from_row(detail.project),
            credit_batch=CreditBatch.from_row(detail.credit_batch),
        )


@strawberry.type
class OrderStateChange:
    sequence: int | None = strawberry.field(
        description="The event's place in your event stream (see `orderStatusChanged`); null "
        "for the few milliseconds until the event is published."
    )
    previous_state: OrderState | None  # type: ignore[valid-type]
    state: OrderState  # type: ignore[valid-type]
    at: datetime

    @classmethod
    def from_change(cls, change: OrderStateChanged) -> "OrderStateChange":
        return cls(
            sequence=change.sequence,
            previous_state=order_state(change.previous_state),
            state=models.OrderState(change.state),
            at=change.occurred_at,
        )


def order_state(value: str | None) -> models.OrderState | None:
    return models.OrderState(value) if value is not None else None


def projects_of(details: list[offsets.AllocationDetail]) -> list[Any]:
    """The distinct project rows of an order's allocations, in their order."""
    return list({detail.project.id: detail.project for detail in details}.values())


@strawberry.type
class Certificate:
    id: str
    issued_at: datetime
    public_url: str = strawberry.field(description="Public HTML page; no key needed.")
    download_url: str = strawberry.field(description="The certificate as PDF; no key needed.")


def certificate_of(
    certificate_id: str | None, fulfilled_at: datetime | None, context: Context
) -> Certificate | None:
    """An order's certificate, or None until it is fulfilled."""
    if certificate_id is None or fulfilled_at is None:
        return None
    page = context.public_url(f"/certificates/{certificate_id}")
    return Certificate(
        id=certificate_id, issued_at=fulfilled_at, public_url=page, download_url=f"{page}.pdf"
    )


# How an Order's fields read from its row: `Order.from_row` and the compiled plans alike.
ORDER_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": lambda row: str(row.id),
    "state": attrgetter("state"),
    "mass": lambda row: Mass.from_grams(row.mass_grams),
    "price": lambda row: Money.from_minor_units(row.price_minor, row.currency),
    "certificate_id": attrgetter("certificate_id"),
    "description": attrgetter("description"),
    "metadata": lambda row: readable_json(row.metadata_),
    "idempotency_key": attrgetter("idempotency_key"),
    "callback_url": attrgetter("callback_url"),
    "created_at": attrgetter("created_at"),
    "fulfilled_at": attrgetter("fulfilled_at"),
    "cancelled_at": attrgetter("cancelled_at"),
    "portfolio_id": attrgetter("portfolio_id"),
    "estimate_id": attrgetter("estimate_id"),
}


@strawberry.type
class Order(relay.Node):
    id: relay.NodeID[str]
    state: OrderState  # type: ignore[valid-type]
    mass: Mass
    price: Money
    certificate_id: str | None
    description: str | None
    metadata: JSON | None = strawberry.field(description="Yours; never shown publicly.")
    idempotency_key: str | None
    callback_url: str | None
    created_at: datetime
    fulfilled_at: datetime | None
    cancelled_at: datetime | None
    portfolio_id: strawberry.Private[uuid.UUID]
    estimate_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: models.OffsetOrder) -> "Order":
        return from_fields(cls, ORDER_FIELDS, row)

    resolve_nodes = nodes_loaded_by(lambda loaders: loaders.order_by_id)

    @strawberry.field
    async def portfolio(self, info: Info) -> Portfolio:
        row = await info.context.loaders.portfolio_by_id.load(self.portfolio_id)
        return Portfolio.from_row(row)

    @strawberry.field(description="Credits retired for this order; empty until fulfilled.")
    async def allocations(self, info: Info) -> list[Allocation]:
        details = await info.context.loaders.allocation_details_by_order.load(uuid.UUID(self.id))
        return [Allocation.from_detail(detail) for detail in details]

    @strawberry.field(description="The projects this order's credits come from.")
    async def projects(self, info: Info) -> list[Project]:
        details = await info.context.loaders.allocation_details_by_order.load(uuid.UUID(self.id))
        return [Project.from_row(project) for project in projects_of(details)]

    @strawberry.field(description="Null until the order is fulfilled.")
    def certificate(self, info: Info) -> Certificate | None:
        return certificate_of(self.certificate_id, self.fulfilled_at, info.context)

    @strawberry.field(description="The estimate this order offsets, if it was ordered by one.")
    async def estimate(self, info: Info) -> Estimate | None:
        if self.estimate_id is None:
            return None
        row = await info.context.loaders.estimate_by_id.load(self.estimate_id)
        return map_optional(Estimate.from_row, row)

    @strawberry.field(description="Webhooks sent about this order, with every attempt.")
    async def webhook_deliveries(
        self, info: Info
    ) -> list[Annotated["WebhookDelivery", strawberry.lazy("app.graphql.webhooks")]]:
        from app.graphql.webhooks import WebhookDelivery

        rows = await info.context.loaders.webhook_deliveries_by_order.load(uuid.UUID(self.id))
        return [WebhookDelivery.from_row(row) for row in rows]

    @strawberry.field(description="Every state the order has been in, oldest first.")
    async def history(self, info: Info) -> list[OrderStateChange]:
        changes = await info.context.loaders.changes_by_order.load(uuid.UUID(self.id))
        return [OrderStateChange.from_change(change) for change in changes]


@strawberry.type
class OrderConnection(relay.Connection[Order]):
    total_count: int


# What compiled plans may answer (app/graphql/plans.py): `orders` without a filter, down to
# its orders' allocations, their projects, bundles and batches.
plannable_connection(
    "orders",
    OrderConnection,
    Order,
    lambda principal: offsets.orders_of(principal),
    models.OffsetOrder,
)
_ALLOCATIONS = Loaded(
    loader_of=lambda loaders: loaders.allocation_details_by_order, key=attrgetter("id")
)
plannable(
    Order,
    row_readers(ORDER_FIELDS)
    | {
        "certificate": lambda row, context: certificate_of(
            row.certificate_id, row.fulfilled_at, context
        ),
        "allocations": _ALLOCATIONS,
        "projects": Loaded(_ALLOCATIONS.loader_of, _ALLOCATIONS.key, then=projects_of),
    },
)
plannable(
    Allocation,  # from an AllocationDetail, as `Allocation.from_detail`; relations as plain rows
    row_readers(
        {
            "mass": lambda detail: Mass.from_grams(detail.mass_grams),
            "serial_range": attrgetter("serial_range"),
            "bundle": attrgetter("bundle"),
            "project": attrgetter("project"),
            "credit_batch": attrgetter("credit_batch"),
        }
    ),
)
plannable(Certificate)


@strawberry.input
class QuoteByMassInput:
    mass: MassInput
    portfolio_id: strawberry.ID | None = None


@strawberry.input
class QuoteByValueInput:
    value: MoneyInput
    portfolio_id: strawberry.ID | None = None


@strawberry.input
class OrdersFilter:
    states: list[OrderState] | None = None  # type: ignore[valid-type]
    created_after: datetime | None = None
    created_before: datetime | None = None


def _order_filter(filter: OrdersFilter | None) -> offsets.OrderFilter | None:
    if filter is None:
        return None
    return offsets.OrderFilter(
        states=[models.OrderState(state) for state in (filter.states or [])],
        created_after=filter.created_after,
        created_before=filter.created_before,
    )


def _portfolio_id(value: strawberry.ID | None) -> uuid.UUID | None:
    return None if value is None else parse_global_id(value, "Portfolio", "portfolioId")


async def _quote(
    info: Info, quote: Callable[[AsyncSession], Awaitable[offsets.Quote]]
) -> QuotePayload:
    outcome = await perform(info.context.db, quote, reads=info.context.reads)
    return QuotePayload(
        quote=outcome.map(Quote.from_domain),
        user_errors=outcome.user_errors,
    )


@strawberry.type
class OffsetQueries:
    @strawberry.field(description="Price a mass across a portfolio (default: the account's).")
    async def quote_by_mass(self, info: Info, input: QuoteByMassInput) -> QuotePayload:
        principal = info.context.require_principal()
        return await _quote(
            info,
            lambda session: offsets.quote_by_mass(
                session,
                principal,
                input.mass.to_grams("mass"),
                _portfolio_id(input.portfolio_id),
            ),
        )

    @strawberry.field(description="The largest mass (to the gram) a value buys.")
    async def quote_by_value(self, info: Info, input: QuoteByValueInput) -> QuotePayload:
        principal = info.context.require_principal()
        return await _quote(
            info,
            lambda session: offsets.quote_by_value(
                session,
                principal,
                input.value.amount,
                input.value.currency,
                _portfolio_id(input.portfolio_id),
            ),
        )

    @strawberry.field(description="One order, or null.")
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        info.context.require_principal()
        return await node_by_id(
            info, info.context.loaders.order_by_id, row_id_of(id, "Order"), Order.from_row
        )

    @strawberry.field(description="The order created with this idempotency key, or null.")
    async def order_by_idempotency_key(self, info: Info, key: str) -> Order | None:
        principal = info.context.require_principal()
        async with info.context.reads.session() as session:
            row = await offsets.order_by_idempotency_key(session, principal, key)
        return map_optional(Order.from_row, row)

    orders = filtered_connection_field(
        OrderConnection,
        OrdersFilter,
        lambda principal, filter: offsets.orders_of(principal, _order_filter(filter)),
        models.OffsetOrder,
        Order.from_row,
        description="Orders, newest first.",
    )


@strawberry.input
class OrderOptionsInput:
    """What every way of ordering accepts besides the quantity (inherited, not sent alone)."""

    idempotency_key: str | None = strawberry.field(
        default=None, description="Retry safely: the same key and input return the same order."
    )
    description: str | None = strawberry.field(
        default=None, description="At most 512 characters; printed on the certificate."
    )
    metadata: JSON | None = strawberry.field(
        default=None, description="A JSON object of yours, at most 512 bytes; never public."
    )
    callback_url: str | None = strawberry.field(
        default=None, description="An http(s) URL told of this order's state changes."
    )
    portfolio_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the account's default portfolio."
    )

    def options(self) -> offsets.OrderOptions:
        return offsets.OrderOptions(
            idempotency_key=self.idempotency_key,
            description=self.description,
            metadata=self.metadata,
            callback_url=self.callback_url,
            portfolio_id=_portfolio_id(self.portfolio_id),
        )


@strawberry.input
class CreateOrderByMassInput(OrderOptionsInput):
    mass: MassInput


@strawberry.input
class CreateOrderByValueInput(OrderOptionsInput):
    value: MoneyInput


@strawberry.input
class CreateOrderByEstimateInput(OrderOptionsInput):
    estimate_id: strawberry.ID


@strawberry.input
class CreateRideOrderInput(OrderOptionsInput):
    distance_km: Decimal
    vehicle_type: VehicleType = strawberry.field(  # type: ignore[valid-type]
        default=VehicleType.PASSENGER_CAR_VAN_OR_SUV,
        description="As in estimateGroundTransport.",
    )


@strawberry.input
class CancelOrderInput:
    id: strawberry.ID


@strawberry.type
class OrderPayload:
    order: Order | None
    user_errors: list[UserError]


# What a create's use case hands the group commit: its order's rows to insert, or (a replay)
# the order itself.
StagedOrder = models.OffsetOrder | Staged[models.OffsetOrder]


async def _order_payload(
    context: Context,
    use_case: Callable[[AsyncSession], Awaitable[models.OffsetOrder]],
    *,
    grouped: bool = True,
) -> OrderPayload:
    return _payload(context, await perform(context.db, use_case, grouped=grouped))


async def _staged_order_payload(
    context: Context,
    stage: Callable[[AsyncSession], Awaitable[StagedOrder]],
) -> OrderPayload:
    return _payload(context, await perform_staged(context.db, stage))


def _payload(context: Context, outcome: Outcome[models.OffsetOrder]) -> OrderPayload:
    if outcome.value is not None:
        context.signal_change()
    return OrderPayload(
        order=outcome.map(Order.from_row),
        user_errors=outcome.user_errors,
    )


@strawberry.type
class OffsetMutations:
    @strawberry.mutation(description="Order credits for a mass, priced now.")
    async def create_order_by_mass(
        self, info: Info, input: CreateOrderByMassInput
    ) -> OrderPayload | None:
        principal = info.context.require_principal()

        async def stage(session: AsyncSession) -> StagedOrder:
            return await offsets.stage_order_by_mass(
                session, principal, input.mass.to_grams("mass"), input.options()
            )

        return await _staged_order_payload(info.context, stage)

    @strawberry.mutation(description="Order the largest mass a value buys.")
    async def create_order_by_value(
        self, info: Info, input: CreateOrderByValueInput
    ) -> OrderPayload | None:
        principal = info.context.require_principal()

        async def stage(session: AsyncSession) -> StagedOrder:
            return await offsets.stage_order_by_value(
                session, principal, input.value.amount, input.value.currency, input.options()
            )

        return await _staged_order_payload(info.context, stage)

    @strawberry.mutation(
        description="Offset an estimate (its emission rounded up to the gram); once per estimate."
    )
    async def create_order_by_estimate(
        self, info: Info, input: CreateOrderByEstimateInput
    ) -> OrderPayload | None:
        principal = info.context.require_principal()

        async def stage(session: AsyncSession) -> StagedOrder:
            estimate_id = parse_global_id(input.estimate_id, "Estimate", "estimateId")
            estimate = await emissions.get_estimate(session, principal, estimate_id)
            return await offsets.stage_order_by_estimate(
                session, principal, estimate, input.options()
            )

        return await _staged_order_payload(info.context, stage)

    @strawberry.mutation(
        description="Estimate a ride and offset it in one step.",
        deprecation_reason="Use estimateGroundTransport then createOrderByEstimate",
    )
    async def create_ride_order(
        self, info: Info, input: CreateRideOrderInput
    ) -> OrderPayload | None:
        principal = info.context.require_principal()

        async def use_case(session: AsyncSession) -> models.OffsetOrder:
            return await offsets.create_ride_order(
                session,
                principal,
                {"distanceKm": str(input.distance_km), "vehicleType": input.vehicle_type},
                lambda: emissions.estimate_ground_transport(
                    session,
                    principal,
                    distance_km=input.distance_km,
                    vehicle_type=input.vehicle_type,
                ),
                input.options(),
            )

        return await _order_payload(info.context, use_case)

    @strawberry.mutation(description="Cancel a PLACED order.")
    async def cancel_order(self, info: Info, input: CancelOrderInput) -> OrderPayload | None:
        principal = info.context.require_principal()

        async def use_case(session: AsyncSession) -> models.OffsetOrder:
            order_id = parse_global_id(input.id, "Order", "id")
            return await offsets.cancel_order(session, principal, order_id)

        return await _order_payload(info.context, use_case, grouped=False)
