"""Per-request batch loaders over the domains' batch reads; each batch reads through the
operation's RequestReads (one shared session, one batch at a time, for an HTTP query)."""

from collections.abc import Callable
from dataclasses import dataclass

from app.accounts import service as accounts
from app.accounts.models import Subaccount
from app.accounts.service import Principal
from app.catalog import service as catalog
from app.catalog.models import Bundle, CreditBatch, Portfolio, Project
from app.catalog.service import WeightedBundle
from app.emissions import customer_orders, products
from app.emissions import service as estimates
from app.emissions.models import CustomerOrder, CustomerOrderItem, Estimate, Product
from app.events.changes import OrderStateChanged
from app.events.models import WebhookAttempt, WebhookDelivery
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
from app.offsets.models import OffsetOrder


@dataclass
class DataLoaders:
    subaccount_by_id: RowsByIdLoader[Subaccount]
    estimate_by_id: RowsByIdLoader[Estimate]
    product_by_id: RowsByIdLoader[Product]
    customer_order_by_id: RowsByIdLoader[CustomerOrder]
    customer_order_items: MappedLoader[list[CustomerOrderItem]]
    project_by_id: RowsByIdLoader[Project]
    bundle_by_id: RowsByIdLoader[Bundle]
    portfolio_by_id: RowsByIdLoader[Portfolio]
    credit_batch_by_id: RowsByIdLoader[CreditBatch]
    weighted_bundles_by_portfolio: MappedLoader[list[WeightedBundle]]
    projects_by_bundle: MappedLoader[list[Project]]
    credit_batches_by_project: MappedLoader[list[CreditBatch]]
    available_grams_by_bundle: MappedLoader[int]
    available_grams_by_project: MappedLoader[int]
    order_by_id: RowsByIdLoader[OffsetOrder]
    allocation_details_by_order: MappedLoader[list[offsets.AllocationDetail]]
    changes_by_order: MappedLoader[list[OrderStateChanged]]
    webhook_deliveries_by_order: MappedLoader[list[WebhookDelivery]]
    webhook_attempts_by_delivery: MappedLoader[list[WebhookAttempt]]

    def forget(self) -> None:
        """Drop every cached row: a WebSocket's loaders outlive each event it is sent."""
        for loader in vars(self).values():
            loader.clear_all()


def create_dataloaders(reads: RequestReads, principal: Principal | None) -> DataLoaders:
    """Fresh loaders for one operation; must be called inside the running event loop."""

    def by_id(fetch: FetchRows[Row]) -> RowsByIdLoader[Row]:
        return RowsByIdLoader(reads, principal, fetch)

    def mapped(fetch: FetchMapping[Value], missing: Callable[[], Value]) -> MappedLoader[Value]:
        return MappedLoader(reads, principal, fetch, missing)

    return DataLoaders(
        subaccount_by_id=by_id(accounts.subaccounts_by_ids),
        estimate_by_id=by_id(estimates.estimates_by_id),
        product_by_id=by_id(products.products_by_ids),
        customer_order_by_id=by_id(customer_orders.customer_orders_by_id),
        customer_order_items=mapped(customer_orders.items_of_orders, list),
        project_by_id=by_id(catalog.projects_by_ids),
        bundle_by_id=by_id(catalog.bundles_by_ids),
        portfolio_by_id=by_id(catalog.portfolios_by_ids),
        credit_batch_by_id=by_id(catalog.credit_batches_by_ids),
        weighted_bundles_by_portfolio=mapped(catalog.weighted_bundles_of_portfolios, list),
        projects_by_bundle=mapped(catalog.projects_of_bundles, list),
        credit_batches_by_project=mapped(catalog.credit_batches_of_projects, list),
        available_grams_by_bundle=mapped(inventory.available_grams_by_bundle, int),
        available_grams_by_project=mapped(inventory.available_grams_by_project, int),
        order_by_id=by_id(offsets.orders_by_ids),
        allocation_details_by_order=mapped(offsets.allocation_details_of_orders, list),
        changes_by_order=mapped(changes_of_orders, list),
        webhook_deliveries_by_order=mapped(webhook_deliveries.deliveries_of_orders, list),
        webhook_attempts_by_delivery=mapped(webhook_deliveries.attempts_of_deliveries, list),
    )
