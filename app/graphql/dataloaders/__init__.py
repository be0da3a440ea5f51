"""Per-request batch loaders; each batch opens its own short session (sessions are not shared)."""

from dataclasses import dataclass

from app.accounts.service import Principal
from app.catalog import service as catalog
from app.catalog.models import Bundle, CreditBatch, Portfolio, Project
from app.catalog.service import WeightedBundle
from app.db import Database
from app.events import webhooks
from app.events.models import Event, WebhookAttempt, WebhookDelivery
from app.events.service import events_of_orders
from app.graphql.dataloaders.batched import MappedLoader, RowsByIdLoader
from app.graphql.dataloaders.customer_order_items import CustomerOrderItemsLoader
from app.graphql.dataloaders.customer_orders import CustomerOrderLoader
from app.graphql.dataloaders.estimates import EstimateLoader
from app.graphql.dataloaders.products import ProductLoader
from app.graphql.dataloaders.subaccounts import SubaccountLoader
from app.offsets import service as offsets
from app.offsets.models import Allocation, OffsetOrder


@dataclass
class DataLoaders:
    subaccount_by_id: SubaccountLoader
    estimate_by_id: EstimateLoader
    product_by_id: ProductLoader
    customer_order_by_id: CustomerOrderLoader
    customer_order_items: CustomerOrderItemsLoader
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
    allocations_by_order: MappedLoader[list[Allocation]]
    events_by_order: MappedLoader[list[Event]]
    webhook_deliveries_by_order: MappedLoader[list[WebhookDelivery]]
    webhook_attempts_by_delivery: MappedLoader[list[WebhookAttempt]]


def create_dataloaders(db: Database, principal: Principal | None) -> DataLoaders:
    """Fresh loaders for one operation; must be called inside the running event loop."""
    return DataLoaders(
        subaccount_by_id=SubaccountLoader(db, principal),
        estimate_by_id=EstimateLoader(db, principal),
        product_by_id=ProductLoader(db, principal),
        customer_order_by_id=CustomerOrderLoader(db, principal),
        customer_order_items=CustomerOrderItemsLoader(db, principal),
        project_by_id=RowsByIdLoader(db, principal, catalog.projects_by_ids),
        bundle_by_id=RowsByIdLoader(db, principal, catalog.bundles_by_ids),
        portfolio_by_id=RowsByIdLoader(db, principal, catalog.portfolios_by_ids),
        credit_batch_by_id=RowsByIdLoader(db, principal, catalog.credit_batches_by_ids),
        weighted_bundles_by_portfolio=MappedLoader(
            db, principal, catalog.weighted_bundles_of_portfolios, list
        ),
        projects_by_bundle=MappedLoader(db, principal, catalog.projects_of_bundles, list),
        credit_batches_by_project=MappedLoader(
            db, principal, catalog.credit_batches_of_projects, list
        ),
        available_grams_by_bundle=MappedLoader(
            db, principal, catalog.available_grams_by_bundle, int
        ),
        available_grams_by_project=MappedLoader(
            db, principal, catalog.available_grams_by_project, int
        ),
        order_by_id=RowsByIdLoader(db, principal, offsets.orders_by_ids),
        allocations_by_order=MappedLoader(db, principal, offsets.allocations_of_orders, list),
        events_by_order=MappedLoader(db, principal, events_of_orders, list),
        webhook_deliveries_by_order=MappedLoader(
            db, principal, webhooks.deliveries_of_orders, list
        ),
        webhook_attempts_by_delivery=MappedLoader(
            db, principal, webhooks.attempts_of_deliveries, list
        ),
    )
