"""Customer orders: a rental order of catalog devices with each device's emission breakdown.

An order is computed in bulk — one query for its products, the arithmetic in Python (identical
items computed once), one executemany for its items — and is also an estimate, so it can be
offset. `(customer_id, order_id)` is the order's idempotency key within the principal's scope.
"""

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.accounts.service import Principal, owned_by
from app.emissions.calculators import (
    FactorUse,
    ProductEmissionBreakdown,
    ProductFootprint,
    estimate_product_item,
)
from app.emissions.models import (
    CustomerOrder,
    CustomerOrderItem,
    Estimate,
    EstimateKind,
    Product,
)
from app.emissions.products import footprint_of, products_by_product_id, whole_units
from app.emissions.service import calculation_errors, factor_uses_as_json, kg_to_milligrams
from app.errors import DomainError, ErrorCode, InvalidInput, NotFound
from app.text import clean_text

MAX_ITEMS_PER_ORDER = 10_000
MAX_TEXT_LENGTH = 200
MAX_TENURE_MONTHS = 1_200  # a century: beyond it a rental is a typo
MAX_DEVICE_WEIGHT_KG = Decimal(10_000)


@dataclass(frozen=True)
class DeviceConfig:
    product_id: str
    serial_number: str
    tenure_months: int
    weight_kg: Decimal | None = None  # as shipped; the catalog weight when absent


@dataclass(frozen=True)
class CustomerOrderSpec:
    customer_id: str
    order_id: str
    order_date: date
    tenure_start_date: date
    items: Sequence[DeviceConfig]


@dataclass(frozen=True)
class _Item:
    """An item after the checks that need no database: trimmed, weight in grams."""

    product_id: str
    serial_number: str
    tenure_months: int
    weight_grams: int | None


@dataclass(frozen=True)
class _ItemEmissions:
    parts_mg: tuple[int, int, int, int]
    descriptions: tuple[str, str, str, str]
    factors_used: list[FactorUse]


@dataclass(frozen=True)
class DeviceHistory:
    """Every order a device (by serial number) was part of, oldest order first."""

    serial_number: str
    entries: list[tuple[CustomerOrder, CustomerOrderItem]]


def _checked_items(items: Sequence[DeviceConfig]) -> list[_Item]:
    if not items:
        raise InvalidInput("An order needs at least one item.", "items")
    if len(items) > MAX_ITEMS_PER_ORDER:
        raise InvalidInput(
            f"An order has at most {MAX_ITEMS_PER_ORDER:,} items; split it into several orders.",
            "items",
        )
    checked = []
    serial_numbers: set[str] = set()
    for index, item in enumerate(items):
        path = f"items.{index}.config."
        serial = clean_text(item.serial_number, path + "serialNumber", max_length=MAX_TEXT_LENGTH)
        if serial in serial_numbers:
            raise InvalidInput("A device appears only once in an order.", path + "serialNumber")
        serial_numbers.add(serial)
        if not 0 < item.tenure_months <= MAX_TENURE_MONTHS:
            raise InvalidInput(
                f"Must be a whole number of months from 1 to {MAX_TENURE_MONTHS}.",
                path + "tenureMonths",
            )
        grams = None
        if item.weight_kg is not None:
            if not 0 < item.weight_kg <= MAX_DEVICE_WEIGHT_KG:
                raise InvalidInput(
                    f"Must be greater than 0 and at most {MAX_DEVICE_WEIGHT_KG} kg.",
                    path + "weightKg",
                )
            grams = whole_units(item.weight_kg, 1000, path + "weightKg", "grams")
        checked.append(
            _Item(
                product_id=clean_text(
                    item.product_id, path + "productId", max_length=MAX_TEXT_LENGTH
                ),
                serial_number=serial,
                tenure_months=item.tenure_months,
                weight_grams=grams,
            )
        )
    return checked


def _input_hash(spec: CustomerOrderSpec, items: Sequence[_Item]) -> str:
    """A digest of everything but the key: the same order sent again hashes the same."""
    canonical = {
        "orderDate": spec.order_date.isoformat(),
        "tenureStartDate": spec.tenure_start_date.isoformat(),
        "items": [
            [item.product_id, item.serial_number, item.tenure_months, item.weight_grams]
            for item in items
        ],
    }
    encoded = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def _emissions(breakdown: ProductEmissionBreakdown) -> _ItemEmissions:
    parts = breakdown.parts
    return _ItemEmissions(
        parts_mg=(
            kg_to_milligrams(parts[0].emission_kgco2e),
            kg_to_milligrams(parts[1].emission_kgco2e),
            kg_to_milligrams(parts[2].emission_kgco2e),
            kg_to_milligrams(parts[3].emission_kgco2e),
        ),
        descriptions=(
            parts[0].description,
            parts[1].description,
            parts[2].description,
            parts[3].description,
        ),
        factors_used=breakdown.as_calculation().factors_used,
    )


def _sum_factor_uses(uses: list[FactorUse]) -> list[FactorUse]:
    """One entry per factor with the quantities and emissions of all items added up."""
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    units: dict[str, str] = {}
    for use in uses:
        total = totals[use.factor_id]
        total[0] += use.quantity
        total[1] += use.kgco2e
        units[use.factor_id] = use.unit
    return [
        FactorUse(factor_id=factor_id, quantity=quantity, unit=units[factor_id], kgco2e=kgco2e)
        for factor_id, (quantity, kgco2e) in totals.items()
    ]


def customer_orders_of(
    principal: Principal, customer_id: str | None = None
) -> SelectOfScalar[CustomerOrder]:
    """The customer orders a principal may see (of one customer if given), for paging."""
    statement = select(CustomerOrder).where(*owned_by(principal, CustomerOrder))
    if customer_id is not None:
        statement = statement.where(CustomerOrder.customer_id == customer_id)
    return statement


async def _find(
    session: AsyncSession, principal: Principal, customer_id: str, order_id: str
) -> CustomerOrder | None:
    statement = customer_orders_of(principal, customer_id).where(CustomerOrder.order_id == order_id)
    return (await session.exec(statement)).first()


def _replay(existing: CustomerOrder, input_hash: str) -> CustomerOrder:
    if existing.input_hash != input_hash:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            f"Order {existing.order_id!r} of customer {existing.customer_id!r} already exists "
            "with other details.",
            "orderId",
        )
    return existing


async def create_customer_order(
    session: AsyncSession, principal: Principal, spec: CustomerOrderSpec
) -> CustomerOrder:
    """Compute and store an order and its estimate; the same order sent again is returned as
    it was, the same key with other details is IDEMPOTENCY_CONFLICT."""
    customer_id = clean_text(spec.customer_id, "customerId", max_length=MAX_TEXT_LENGTH)
    order_id = clean_text(spec.order_id, "orderId", max_length=MAX_TEXT_LENGTH)
    if spec.tenure_start_date < spec.order_date:
        raise InvalidInput("The tenure cannot start before the order date.", "tenureStartDate")
    items = _checked_items(spec.items)
    input_hash = _input_hash(spec, items)
    existing = await _find(session, principal, customer_id, order_id)
    if existing is not None:
        return _replay(existing, input_hash)

    products = await products_by_product_id(session, principal, (i.product_id for i in items))
    order = CustomerOrder(
        account_id=principal.account_id,
        mode=principal.mode,
        subaccount_id=principal.subaccount_id,
        customer_id=customer_id,
        order_id=order_id,
        order_date=spec.order_date,
        tenure_start_date=spec.tenure_start_date,
        estimate_id=uuid.uuid4(),
        item_count=len(items),
        total_emission_mg=0,
        input_hash=input_hash,
    )
    rows, uses = _item_rows(principal, order.id, items, products)
    order.total_emission_mg = sum(row["total_emission_mg"] for row in rows)
    estimate = Estimate(
        id=order.estimate_id,
        account_id=principal.account_id,
        mode=principal.mode,
        subaccount_id=principal.subaccount_id,
        kind=EstimateKind.CUSTOMER_ORDER,
        total_emission_mg=order.total_emission_mg,
        inputs={
            "customerOrderId": str(order.id),
            "customerId": customer_id,
            "orderId": order_id,
            "orderDate": spec.order_date.isoformat(),
            "tenureStartDate": spec.tenure_start_date.isoformat(),
            "itemCount": len(items),
        },
        factors=factor_uses_as_json(_sum_factor_uses(uses)),
    )
    try:
        async with session.begin_nested():
            session.add(estimate)
            await session.flush()
            session.add(order)
            await session.flush()
    except IntegrityError:
        # A concurrent request stored the same key first (the unique index said so).
        existing = await _find(session, principal, customer_id, order_id)
        if existing is None:
            raise
        return _replay(existing, input_hash)
    connection = await session.connection()
    await connection.execute(insert(CustomerOrderItem), rows)
    return order


def _item_rows(
    principal: Principal,
    order_id: uuid.UUID,
    items: Sequence[_Item],
    products: dict[str, Product],
) -> tuple[list[dict[str, Any]], list[FactorUse]]:
    """The item rows to insert and every factor use, computing identical items once."""
    footprints: dict[str, ProductFootprint] = {}
    computed: dict[tuple[str, int, int], _ItemEmissions] = {}
    rows: list[dict[str, Any]] = []
    uses: list[FactorUse] = []
    for position, item in enumerate(items):
        path = f"items.{position}.config."
        product = products.get(item.product_id)
        if product is None:
            raise NotFound(f"No product {item.product_id!r} in the catalog.", path + "productId")
        grams = product.weight_grams if item.weight_grams is None else item.weight_grams
        key = (item.product_id, item.tenure_months, grams)
        emissions = computed.get(key)
        if emissions is None:
            footprint = footprints.get(item.product_id)
            if footprint is None:
                footprint = footprints[item.product_id] = footprint_of(product)
            with calculation_errors(prefix=path):
                breakdown = estimate_product_item(
                    footprint, item.tenure_months, Decimal(grams) / 1000
                )
            emissions = computed[key] = _emissions(breakdown)
        uses.extend(emissions.factors_used)
        embodied, packaging, transportation, use = emissions.parts_mg
        rows.append(
            {
                "id": uuid.uuid4(),
                "customer_order_id": order_id,
                "account_id": principal.account_id,
                "mode": principal.mode,
                "subaccount_id": principal.subaccount_id,
                "position": position,
                "product_id": item.product_id,
                "serial_number": item.serial_number,
                "tenure_months": item.tenure_months,
                "weight_grams": grams,
                "embodied_mg": embodied,
                "packaging_mg": packaging,
                "transportation_mg": transportation,
                "use_mg": use,
                "total_emission_mg": embodied + packaging + transportation + use,
                "embodied_description": emissions.descriptions[0],
                "packaging_description": emissions.descriptions[1],
                "transportation_description": emissions.descriptions[2],
                "use_description": emissions.descriptions[3],
            }
        )
    return rows, uses


async def get_customer_order(
    session: AsyncSession, principal: Principal, customer_order_id: uuid.UUID
) -> CustomerOrder:
    order = (
        await session.exec(
            customer_orders_of(principal).where(CustomerOrder.id == customer_order_id)
        )
    ).first()
    if order is None:
        raise NotFound("No such customer order.", "id")
    return order


async def customer_orders_by_id(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> Sequence[CustomerOrder]:
    statement = customer_orders_of(principal).where(col(CustomerOrder.id).in_(ids))
    return (await session.exec(statement)).all()


async def items_of_orders(
    session: AsyncSession, principal: Principal, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[CustomerOrderItem]]:
    """The items of several orders in one query, each order's in the order they were sent."""
    statement = (
        select(CustomerOrderItem)
        .where(*owned_by(principal, CustomerOrderItem))
        .where(col(CustomerOrderItem.customer_order_id).in_(order_ids))
        .order_by(col(CustomerOrderItem.customer_order_id), col(CustomerOrderItem.position))
    )
    items: dict[uuid.UUID, list[CustomerOrderItem]] = {order_id: [] for order_id in order_ids}
    for item in await session.exec(statement):
        items[item.customer_order_id].append(item)
    return items


async def device_emissions(
    session: AsyncSession, principal: Principal, serial_number: str
) -> DeviceHistory:
    """A device's history across the principal's orders, in one query."""
    serial = serial_number.strip()
    statement = (
        select(CustomerOrder, CustomerOrderItem)
        .join(CustomerOrderItem, col(CustomerOrderItem.customer_order_id) == CustomerOrder.id)
        .where(*owned_by(principal, CustomerOrder))
        .where(*owned_by(principal, CustomerOrderItem))
        .where(CustomerOrderItem.serial_number == serial)
        .order_by(col(CustomerOrder.order_date), col(CustomerOrder.created_at))
    )
    entries = [(order, item) for order, item in await session.exec(statement)]
    return DeviceHistory(serial_number=serial, entries=entries)
