"""Per-request batch loaders over the domains' batch reads; each batch reads through the
operation's RequestReads (one shared session, one batch at a time, for an HTTP query)."""

from collections.abc import Callable
from functools import cached_property
from typing import TypeVar

from aiodataloader import DataLoader

from app.accounts import service as accounts
from app.accounts.service import Principal
from app.catalog import service as catalog
from app.emissions import customer_orders, products
from app.emissions import service as estimates
from app.events.service import changes_of_orders
from app.events.webhooks import deliveries as webhook_deliveries
from app.graphql.dataloaders.batched import (
    FetchMapping,
    FetchRows,
    MappedLoader,
    Row,
    RowsByIdLoader,
    Value,
)
from app.graphql.reads import RequestReads
from app.inventory import service as inventory
from app.offsets import service as offsets

Item = TypeVar("Item")


def _by_id(fetch: FetchRows[Row]) -> "cached_property[RowsByIdLoader[Row]]":
    def build(loaders: "DataLoaders") -> RowsByIdLoader[Row]:
        return RowsByIdLoader(loaders.reads, loaders.principal, fetch)

    return cached_property(build)


def _mapped(
    fetch: FetchMapping[Value], missing: Callable[[], Value]
) -> "cached_property[MappedLoader[Value]]":
    def build(loaders: "DataLoaders") -> MappedLoader[Value]:
        return MappedLoader(loaders.reads, loaders.principal, fetch, missing)

    return cached_property(build)


def _lists(fetch: FetchMapping[list[Item]]) -> "cached_property[MappedLoader[list[Item]]]":
    """Children by parent id; a parent without any gets an empty list."""
    return _mapped(fetch, list)


def _sums(fetch: FetchMapping[int]) -> "cached_property[MappedLoader[int]]":
    """A total by id; an id without rows gets 0."""
    return _mapped(fetch, int)


class DataLoaders:
    """One operation's loaders, each built on its first use: most operations use a few of
    them or none (a create, a viewer), and building all nineteen cost ~50 µs of CPU each time.
    Must be used inside the running event loop (aiodataloader's constructor grabs it)."""

    def __init__(self, reads: RequestReads, principal: Principal | None) -> None:
        self.reads = reads
        self.principal = principal

    subaccount_by_id = _by_id(accounts.subaccounts_by_ids)
    estimate_by_id = _by_id(estimates.estimates_by_id)
    product_by_id = _by_id(products.products_by_ids)
    customer_order_by_id = _by_id(customer_orders.customer_orders_by_id)
    customer_order_items = _lists(customer_orders.items_of_orders)
    project_by_id = _by_id(catalog.projects_by_ids)
    bundle_by_id = _by_id(catalog.bundles_by_ids)
    portfolio_by_id = _by_id(catalog.portfolios_by_ids)
    credit_batch_by_id = _by_id(catalog.credit_batches_by_ids)
    weighted_bundles_by_portfolio = _lists(catalog.weighted_bundles_of_portfolios)
    projects_by_bundle = _lists(catalog.projects_of_bundles)
    credit_batches_by_project = _lists(catalog.credit_batches_of_projects)
    available_grams_by_bundle = _sums(inventory.available_grams_by_bundle)
    available_grams_by_project = _sums(inventory.available_grams_by_project)
    order_by_id = _by_id(offsets.orders_by_ids)
    allocation_details_by_order = _lists(offsets.allocation_details_of_orders)
    changes_by_order = _lists(changes_of_orders)
    webhook_deliveries_by_order = _lists(webhook_deliveries.deliveries_of_orders)
    webhook_attempts_by_delivery = _lists(webhook_deliveries.attempts_of_deliveries)

    def forget(self) -> None:
        """Drop every cached row: a WebSocket's loaders outlive each event it is sent."""
        for value in vars(self).values():
            if isinstance(value, DataLoader):  # only the loaders built so far
                value.clear_all()


def create_dataloaders(reads: RequestReads, principal: Principal | None) -> DataLoaders:
    """Loaders for one operation, each built when first used."""
    return DataLoaders(reads, principal)
