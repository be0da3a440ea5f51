"""Use cases of offsetting: quotes, order creation (idempotent), cancellation and reads."""

import functools
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.accounts.service import Principal, owned_by
from app.catalog import service as catalog
from app.catalog.models import Bundle, CreditBatch, Portfolio, Project
from app.db import FlatColumns, column_values, core_rows, model_columns, utcnow
from app.emissions.models import Estimate
from app.errors import DomainError, ErrorCode, InvalidInput, NotFound
from app.events.changes import OrderStateChanged
from app.events.models import Event
from app.events.outbox import event_row
from app.events.webhooks.urls import validate_webhook_url
from app.group_commit import Staged, write_staged
from app.inventory import service as inventory
from app.offsets.models import Allocation, OffsetOrder, OrderLine, OrderState
from app.offsets.pricing import Share, largest_mass_within, price_mass, total_cost
from app.text import check_json, clean_text
from app.units import minor_from

MAX_ORDER_GRAMS = 10**12  # one million tonnes in one order is a typo, not a purchase
MAX_DESCRIPTION = 512
MAX_METADATA_BYTES = 512
MAX_IDEMPOTENCY_KEY = 255
PORTFOLIO_CACHE = "offsets.portfolios"  # session.info key of `_portfolio`'s reads
ORDER_EVENT_TYPES = {
    OrderState.PLACED: "order.placed",
    OrderState.FULFILLED: "order.fulfilled",
    OrderState.CANCELLED: "order.cancelled",
}


@dataclass(frozen=True)
class QuoteLine:
    bundle: Bundle
    weight_bp: int
    mass_grams: int
    unit_price_minor: int
    cost_minor: int
    available_grams: int

    @property
    def inventory_sufficient(self) -> bool:
        return self.available_grams >= self.mass_grams


@dataclass(frozen=True)
class Quote:
    portfolio: Portfolio
    mass_grams: int
    total_cost_minor: int
    currency: str
    lines: list[QuoteLine]

    @property
    def inventory_sufficient(self) -> bool:
        return all(line.inventory_sufficient for line in self.lines)


@dataclass(frozen=True)
class OrderOptions:
    """What every way of ordering accepts besides the quantity."""

    idempotency_key: str | None = None
    description: str | None = None
    metadata: Any = None  # any JSON from the client; only an object of ≤ 512 bytes is accepted
    callback_url: str | None = None
    portfolio_id: uuid.UUID | None = None


@dataclass(frozen=True)
class OrderFilter:
    states: list[OrderState] = field(default_factory=list)
    created_after: datetime | None = None
    created_before: datetime | None = None


def serial_range(serial_prefix: str, start: int, end: int) -> str:
    """How an allocation's registry serials read: `<batch prefix>-<first>-<last>`."""
    return f"{serial_prefix}-{start:012d}-{end:012d}"


def _check_mass(grams: int, field: str = "mass.amount") -> None:
    if grams <= 0:
        raise DomainError(ErrorCode.QUANTITY_NOT_POSITIVE, "Mass must be positive.", field)
    if grams > MAX_ORDER_GRAMS:
        raise InvalidInput("Mass is above the 1,000,000 t limit of one order.", field)


def _shares(portfolio: catalog.PortfolioWithBundles) -> list[Share]:
    return [
        Share(wb.bundle.id, wb.weight_bp, wb.bundle.unit_price_minor) for wb in portfolio.bundles
    ]


def _priced(portfolio: catalog.PortfolioWithBundles, grams: int) -> Quote:
    """The mass split across the portfolio and priced; stock is not looked at (orders are
    matched to stock by fulfilment), so `available_grams` is left at 0."""
    priced = price_mass(grams, _shares(portfolio))
    lines = [
        QuoteLine(
            bundle=wb.bundle,
            weight_bp=wb.weight_bp,
            mass_grams=part.grams,
            unit_price_minor=wb.bundle.unit_price_minor,
            cost_minor=part.cost_minor,
            available_grams=0,
        )
        for wb, part in zip(portfolio.bundles, priced, strict=True)
    ]
    return Quote(
        portfolio=portfolio.portfolio,
        mass_grams=grams,
        total_cost_minor=total_cost(priced),
        currency=portfolio.portfolio.currency,
        lines=lines,
    )


async def _with_stock(session: AsyncSession, principal: Principal, quote: Quote) -> Quote:
    available = await inventory.available_grams_by_bundle(
        session, principal, [line.bundle.id for line in quote.lines]
    )
    lines = [replace(line, available_grams=available[line.bundle.id]) for line in quote.lines]
    return replace(quote, lines=lines)


async def _portfolio(
    session: AsyncSession, principal: Principal, portfolio_id: uuid.UUID | None
) -> catalog.PortfolioWithBundles:
    """The portfolio an order is priced on, read once per transaction: a group of creates
    (app/group_commit.py) shares one transaction, so its orders share the read. Nothing that
    changes portfolios or prices creates orders in the same transaction."""
    cache: dict[tuple[uuid.UUID, str, uuid.UUID | None], catalog.PortfolioWithBundles]
    cache = session.info.setdefault(PORTFOLIO_CACHE, {})
    key = (principal.account_id, principal.mode.value, portfolio_id)
    if key not in cache:
        cache[key] = await catalog.portfolio_for_order(session, principal, portfolio_id)
    return cache[key]


async def quote_by_mass(
    session: AsyncSession, principal: Principal, grams: int, portfolio_id: uuid.UUID | None
) -> Quote:
    return await _with_stock(
        session, principal, await _price_mass(session, principal, grams, portfolio_id)
    )


async def _price_mass(
    session: AsyncSession, principal: Principal, grams: int, portfolio_id: uuid.UUID | None
) -> Quote:
    _check_mass(grams)
    return _priced(await _portfolio(session, principal, portfolio_id), grams)


async def quote_by_value(
    session: AsyncSession,
    principal: Principal,
    amount: Any,
    currency: str,
    portfolio_id: uuid.UUID | None,
) -> Quote:
    """The largest mass (in grams) whose total cost is at most the value."""
    return await _with_stock(
        session, principal, await _price_value(session, principal, amount, currency, portfolio_id)
    )


async def _price_value(
    session: AsyncSession,
    principal: Principal,
    amount: Any,
    currency: str,
    portfolio_id: uuid.UUID | None,
) -> Quote:
    currency = currency.upper()
    value_minor = minor_from(amount, currency, "value.amount")
    if value_minor <= 0:
        raise DomainError(
            ErrorCode.QUANTITY_NOT_POSITIVE, "Value must be positive.", "value.amount"
        )
    portfolio = await _portfolio(session, principal, portfolio_id)
    if currency != portfolio.portfolio.currency:
        raise InvalidInput(
            f"The portfolio is priced in {portfolio.portfolio.currency}.", "value.currency"
        )
    shares = _shares(portfolio)
    # Checked before searching, so an absurd value is refused rather than bisected.
    if value_minor > total_cost(price_mass(MAX_ORDER_GRAMS, shares)):
        raise InvalidInput(
            "Value buys more than the 1,000,000 t limit of one order.", "value.amount"
        )
    grams = largest_mass_within(value_minor, shares)
    if grams == 0:
        raise DomainError(
            ErrorCode.QUANTITY_NOT_POSITIVE, "The value buys less than one gram.", "value.amount"
        )
    _check_mass(grams, "value.amount")
    return _priced(portfolio, grams)


def _validate_options(options: OrderOptions) -> None:
    key = options.idempotency_key
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        raise InvalidInput("Idempotency key: 1-255 printable characters.", "idempotencyKey")
    if options.description is not None:
        clean_text(
            options.description,
            "description",
            max_length=MAX_DESCRIPTION,
            required=False,
            label="Description",
        )
    if options.metadata is not None:
        if not isinstance(options.metadata, dict):
            raise InvalidInput("Metadata must be a JSON object.", "metadata")
        check_json(options.metadata, "metadata")
        if len(_canonical_json(options.metadata).encode()) > MAX_METADATA_BYTES:
            raise InvalidInput(
                f"Metadata must be at most {MAX_METADATA_BYTES} bytes as JSON.", "metadata"
            )
    if options.callback_url is not None:
        validate_webhook_url(options.callback_url, "callbackUrl")


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _request_hash(principal: Principal, request: dict[str, Any], options: OrderOptions) -> str:
    canonical = _canonical_json(
        {
            **request,
            "subaccount": str(principal.subaccount_id) if principal.subaccount_id else None,
            "description": options.description,
            "metadata": options.metadata,
            "callbackUrl": options.callback_url,
            "portfolio": str(options.portfolio_id) if options.portfolio_id else None,
        }
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _order_by_key(
    session: AsyncSession, principal: Principal, key: str
) -> OffsetOrder | None:
    # Keys are unique per account and mode, whichever subaccount used them.
    return (
        await session.exec(
            select(OffsetOrder).where(
                OffsetOrder.account_id == principal.account_id,
                OffsetOrder.mode == principal.mode,
                OffsetOrder.idempotency_key == key,
            )
        )
    ).first()


def _replay(existing: OffsetOrder, request_hash: str) -> OffsetOrder:
    if existing.request_hash != request_hash:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "This idempotency key was used with a different request.",
            "idempotencyKey",
        )
    return existing


async def _live_order_for_estimate(
    session: AsyncSession, estimate_id: uuid.UUID
) -> OffsetOrder | None:
    return (
        await session.exec(
            select(OffsetOrder).where(
                OffsetOrder.estimate_id == estimate_id,
                OffsetOrder.state != OrderState.CANCELLED,
            )
        )
    ).first()


def _estimate_taken() -> DomainError:
    return DomainError(
        ErrorCode.ESTIMATE_ALREADY_ORDERED, "This estimate is already offset.", "estimateId"
    )


def _staged_order(
    principal: Principal,
    quote: Quote,
    options: OrderOptions,
    request_hash: str,
    estimate_id: uuid.UUID | None,
    on_conflict: Callable[[AsyncSession], Awaitable[OffsetOrder]],
) -> Staged[OffsetOrder]:
    """The order's row, its lines and its event, to be inserted with Core statements (the hot
    path of creates: no unit-of-work bookkeeping, one statement per table for a whole group of
    creates); nothing of it is written when the idempotency key or the estimate is taken."""
    order = OffsetOrder(
        account_id=principal.account_id,
        mode=principal.mode,
        subaccount_id=principal.subaccount_id,
        portfolio_id=quote.portfolio.id,
        estimate_id=estimate_id,
        mass_grams=quote.mass_grams,
        price_minor=quote.total_cost_minor,
        currency=quote.currency,
        description=options.description,
        metadata_=options.metadata,
        callback_url=options.callback_url,
        idempotency_key=options.idempotency_key,
        request_hash=request_hash,
    )
    rows: list[tuple[type[SQLModel], dict[str, Any]]] = [
        (
            OrderLine,
            {
                "id": uuid.uuid4(),
                "order_id": order.id,
                "bundle_id": line.bundle.id,
                "position": position,
                "weight_bp": line.weight_bp,
                "mass_grams": line.mass_grams,
                "unit_price_minor": line.unit_price_minor,
                "cost_minor": line.cost_minor,
            },
        )
        for position, line in enumerate(quote.lines)
        if line.mass_grams > 0
    ]
    rows.append((Event, state_change_event(order, None)))
    return Staged(OffsetOrder, column_values(order), order, on_conflict, rows)


def state_change_event(order: OffsetOrder, previous: OrderState | None) -> dict[str, Any]:
    """The outbox row of an order's move from `previous` to its current state."""
    return event_row(
        type=ORDER_EVENT_TYPES[order.state],
        account_id=order.account_id,
        mode=order.mode,
        subaccount_id=order.subaccount_id,
        order_id=order.id,
        previous_state=previous.value if previous else None,
        state=order.state.value,
        # The callback URL rides along (privately) so the relay can queue its webhook.
        payload={
            "orderId": str(order.id),
            "state": order.state.value,
            "callbackUrl": order.callback_url,
        },
    )


def record_state_change(
    session: AsyncSession, order: OffsetOrder, previous: OrderState | None
) -> None:
    session.add(Event(**state_change_event(order, previous)))


async def _stage(
    session: AsyncSession,
    principal: Principal,
    request: dict[str, Any],
    options: OrderOptions,
    make_quote: Callable[[], Awaitable[Quote]],
    estimate_id: uuid.UUID | None = None,
) -> OffsetOrder | Staged[OffsetOrder]:
    """The one path every way of ordering takes: validate and price (reading, never
    writing), then stage the rows (or answer a repeated request with its order), with the
    unique constraints settling duplicates. An idempotency key is looked up only when the
    insert (or pricing) fails, since almost every key is new; an estimate's order, which must
    answer a repeated key before ESTIMATE_ALREADY_ORDERED, looks both up first."""
    principal.require_active()
    _validate_options(options)
    request_hash = _request_hash(principal, request, options)
    key = options.idempotency_key
    if estimate_id is not None:
        if key is not None and (existing := await _order_by_key(session, principal, key)):
            return _replay(existing, request_hash)
        if await _live_order_for_estimate(session, estimate_id):
            raise _estimate_taken()
    try:
        quote = await make_quote()
    except DomainError:
        # Input that no longer prices (another portfolio, another value) under a used key
        # conflicts; the same input replays.
        if key is not None and (existing := await _order_by_key(session, principal, key)):
            return _replay(existing, request_hash)
        raise

    async def taken(session: AsyncSession) -> OffsetOrder:
        # The key or the estimate is taken: by a committed order, an earlier one of this
        # group of creates, or a concurrent request that committed first (PostgreSQL waits
        # for it).
        if key is not None and (existing := await _order_by_key(session, principal, key)):
            return _replay(existing, request_hash)
        if estimate_id is not None and await _live_order_for_estimate(session, estimate_id):
            raise _estimate_taken()
        raise RuntimeError("an order insert conflicted with neither its key nor its estimate")

    return _staged_order(principal, quote, options, request_hash, estimate_id, taken)


async def stage_order_by_mass(
    session: AsyncSession, principal: Principal, grams: int, options: OrderOptions
) -> OffsetOrder | Staged[OffsetOrder]:
    """An order for a mass, validated and priced, its rows staged for a group commit
    (`Database.grouped_staged`); `create_order_by_mass` writes it at once."""
    _check_mass(grams)
    return await _stage(
        session,
        principal,
        {"by": "mass", "grams": grams},
        options,
        lambda: _price_mass(session, principal, grams, options.portfolio_id),
    )


async def create_order_by_mass(
    session: AsyncSession, principal: Principal, grams: int, options: OrderOptions
) -> OffsetOrder:
    return await write_staged(
        session, await stage_order_by_mass(session, principal, grams, options)
    )


async def stage_order_by_value(
    session: AsyncSession, principal: Principal, amount: Any, currency: str, options: OrderOptions
) -> OffsetOrder | Staged[OffsetOrder]:
    currency = currency.upper()
    value_minor = minor_from(amount, currency, "value.amount")
    return await _stage(
        session,
        principal,
        {"by": "value", "minor": value_minor, "currency": currency},
        options,
        lambda: _price_value(session, principal, amount, currency, options.portfolio_id),
    )


def grams_to_offset(estimate: Estimate) -> int:
    """An estimate's offset: its exact milligrams rounded up, so the offset covers it."""
    return -(-estimate.total_emission_mg // 1000)


async def stage_order_by_estimate(
    session: AsyncSession, principal: Principal, estimate: Estimate, options: OrderOptions
) -> OffsetOrder | Staged[OffsetOrder]:
    grams = grams_to_offset(estimate)
    _check_mass(grams, "estimateId")
    return await _stage(
        session,
        principal,
        {"by": "estimate", "estimate": str(estimate.id)},
        options,
        lambda: _price_mass(session, principal, grams, options.portfolio_id),
        estimate_id=estimate.id,
    )


async def create_order_by_estimate(
    session: AsyncSession, principal: Principal, estimate: Estimate, options: OrderOptions
) -> OffsetOrder:
    return await write_staged(
        session, await stage_order_by_estimate(session, principal, estimate, options)
    )


async def create_ride_order(
    session: AsyncSession,
    principal: Principal,
    ride: dict[str, Any],
    estimate_ride: Callable[[], Awaitable[Estimate]],
    options: OrderOptions,
) -> OffsetOrder:
    """Estimate a ride and offset it, written at once (the estimate is written before the
    order is priced, so this use case needs its savepoint). The ride's input, not the new
    estimate, identifies the request, so a retry with the same idempotency key replays
    instead of estimating again."""
    request = {"by": "ride", **ride}
    principal.require_active()
    _validate_options(options)
    key = options.idempotency_key
    if key is not None and (existing := await _order_by_key(session, principal, key)):
        return _replay(existing, _request_hash(principal, request, options))
    estimate = await estimate_ride()
    grams = grams_to_offset(estimate)
    _check_mass(grams, "distanceKm")
    staged = await _stage(
        session,
        principal,
        request,
        options,
        lambda: _price_mass(session, principal, grams, options.portfolio_id),
        estimate_id=estimate.id,
    )
    return await write_staged(session, staged)


def orders_of(
    principal: Principal, filter: OrderFilter | None = None
) -> SelectOfScalar[OffsetOrder]:
    statement = select(OffsetOrder).where(*owned_by(principal, OffsetOrder))
    if filter is not None:
        if filter.states:
            statement = statement.where(col(OffsetOrder.state).in_(filter.states))
        if filter.created_after is not None:
            statement = statement.where(OffsetOrder.created_at >= filter.created_after)
        if filter.created_before is not None:
            statement = statement.where(OffsetOrder.created_at < filter.created_before)
    return statement


async def get_order(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID, field: str = "id"
) -> OffsetOrder:
    order = (await session.exec(orders_of(principal).where(OffsetOrder.id == order_id))).first()
    if order is None:
        raise NotFound("No such order.", field)
    return order


async def orders_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> Sequence[OffsetOrder]:
    return (await session.exec(orders_of(principal).where(col(OffsetOrder.id).in_(ids)))).all()


async def orders_of_changes(
    session: AsyncSession, changes: Sequence[OrderStateChanged]
) -> dict[uuid.UUID, OffsetOrder]:
    """The orders a batch of events is about, each only if it lies in its event's scope: one
    read that serves every subscriber of a process (each then sees only its own scope's)."""
    if not changes:
        return {}
    scopes = {
        change.order_id: (change.account_id, change.mode, change.subaccount_id)
        for change in changes
    }
    rows = (
        await session.exec(select(OffsetOrder).where(col(OffsetOrder.id).in_(list(scopes))))
    ).all()
    return {
        order.id: order
        for order in rows
        if scopes[order.id] == (order.account_id, order.mode, order.subaccount_id)
    }


async def order_by_idempotency_key(
    session: AsyncSession, principal: Principal, key: str
) -> OffsetOrder | None:
    return (
        await session.exec(orders_of(principal).where(OffsetOrder.idempotency_key == key))
    ).first()


async def cancel_order(
    session: AsyncSession, principal: Principal, order_id: uuid.UUID
) -> OffsetOrder:
    """PLACED → CANCELLED, decided by one conditional UPDATE so a racing fulfilment wins or
    loses cleanly; nothing was allocated to a placed order, so no stock moves."""
    order = await get_order(session, principal, order_id)
    now = utcnow()
    result = await session.exec(
        update(OffsetOrder)
        .where(col(OffsetOrder.id) == order.id, col(OffsetOrder.state) == OrderState.PLACED)
        .values(state=OrderState.CANCELLED, cancelled_at=now)
    )
    if result.rowcount != 1:
        raise DomainError(
            ErrorCode.ORDER_NOT_CANCELLABLE,
            f"Only PLACED orders can be cancelled; this one is {order.state.value}.",
            "id",
        )
    order.state = OrderState.CANCELLED
    order.cancelled_at = now
    record_state_change(session, order, OrderState.PLACED)
    await session.flush()
    return order


@dataclass(frozen=True, slots=True)
class AllocationDetail:
    """An allocation with what it draws on in hand: its project, bundle and credit batch as
    plain rows (each model's attribute names, `project.name`, but not their account and mode),
    read in one statement."""

    mass_grams: int
    serial_range: str
    project: Any
    bundle: Any
    credit_batch: Any


_SCOPE_COLUMNS = ("account_id", "mode")


def _plain_columns(model: Any) -> list[Any]:
    # Not their scope (the statement is filtered by the order's): two uuids and an enum less
    # to convert per relation and row, a fifth of the batch's columns.
    return [column for column in model_columns(model) if column.key not in _SCOPE_COLUMNS]


_DETAIL_COLUMNS = FlatColumns(
    [
        (
            "allocation",
            [
                col(Allocation.order_id),
                col(Allocation.mass_grams),
                col(Allocation.serial_start),
                col(Allocation.serial_end),
            ],
        ),
        ("project", _plain_columns(Project)),
        ("bundle", _plain_columns(Bundle)),
        ("credit_batch", _plain_columns(CreditBatch)),
    ]
)


@functools.cache
def _allocation_details_select() -> Any:
    """Allocations joined to their projects, bundles and batches, in order: built once (a
    statement is immutable), as building it was half of a nested read's batch of them."""
    return (
        sa_select(*_DETAIL_COLUMNS.columns)
        .join_from(Allocation, OffsetOrder, col(OffsetOrder.id) == col(Allocation.order_id))
        .join(Project, col(Project.id) == col(Allocation.project_id))
        .join(Bundle, col(Bundle.id) == col(Allocation.bundle_id))
        .join(CreditBatch, col(CreditBatch.id) == col(Allocation.credit_batch_id))
        .order_by(col(Allocation.created_at), col(Allocation.serial_start))
    )


async def allocation_details_of_orders(
    session: AsyncSession, principal: Principal, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[AllocationDetail]]:
    """The allocations of the principal's orders with their projects, bundles and batches:
    one flat Core statement, each row split into its relations' plain rows."""
    statement = _allocation_details_select().where(
        *owned_by(principal, OffsetOrder), col(Allocation.order_id).in_(order_ids)
    )
    grouped: dict[uuid.UUID, list[AllocationDetail]] = {}
    split = _DETAIL_COLUMNS.split
    for row in await core_rows(session, statement):
        allocation, project, bundle, batch = split(row)
        grouped.setdefault(allocation.order_id, []).append(
            AllocationDetail(
                mass_grams=allocation.mass_grams,
                serial_range=serial_range(
                    batch.serial_prefix, allocation.serial_start, allocation.serial_end
                ),
                project=project,
                bundle=bundle,
                credit_batch=batch,
            )
        )
    return grouped
