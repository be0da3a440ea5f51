"""The catalog in the graph: projects, credit batches, bundles and portfolios."""

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

import strawberry
from strawberry import relay

from app.catalog import models
from app.catalog import service as catalog
from app.graphql.context import Info
from app.graphql.errors import UserError, perform
from app.graphql.money import Mass, MassInput, Money, MoneyInput
from app.graphql.plans import from_fields, plannable, row_readers
from app.graphql.relay import (
    connection_field,
    node_by_id,
    nodes_loaded_by,
    parse_global_id,
    row_id_of,
)
from app.offsets.fulfilment import receive_stock

ProjectType = strawberry.enum(models.ProjectType, name="ProjectType")


# How each type's fields read from its row: `from_row` and the compiled plans alike.
PROJECT_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": lambda row: str(row.id),
    "name": attrgetter("name"),
    "type": attrgetter("project_type"),
    "registry": attrgetter("registry_name"),
    "registry_id": attrgetter("registry_id"),
    "country": attrgetter("country"),
    "description": attrgetter("description"),
    "created_at": attrgetter("created_at"),
}
CREDIT_BATCH_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": lambda row: str(row.id),
    "project_id": attrgetter("project_id"),
    "vintage": attrgetter("vintage"),
    "serial_prefix": attrgetter("serial_prefix"),
    "quantity": lambda row: Mass.from_grams(row.quantity_grams),
    "remaining": lambda row: Mass.from_grams(row.remaining_grams),
    "created_at": attrgetter("created_at"),
}
BUNDLE_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": lambda row: str(row.id),
    "name": attrgetter("name"),
    "description": attrgetter("description"),
    "unit_price": lambda row: Money.from_minor_units(row.unit_price_minor, row.currency),
    "created_at": attrgetter("created_at"),
}


@strawberry.type
class Project(relay.Node):
    id: relay.NodeID[str]
    name: str
    type: ProjectType  # type: ignore[valid-type]
    registry: str
    registry_id: str
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 code.")
    description: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: models.Project) -> "Project":
        return from_fields(cls, PROJECT_FIELDS, row)

    resolve_nodes = nodes_loaded_by(lambda loaders: loaders.project_by_id)

    @strawberry.field(description="Credit batches of this project, oldest vintage first.")
    async def credit_batches(self, info: Info) -> list["CreditBatch"]:
        rows = await info.context.loaders.credit_batches_by_project.load(uuid.UUID(self.id))
        return [CreditBatch.from_row(row) for row in rows]

    @strawberry.field(description="Credits of this project not yet allocated.")
    async def available_mass(self, info: Info) -> Mass:
        grams = await info.context.loaders.available_grams_by_project.load(uuid.UUID(self.id))
        return Mass.from_grams(grams)


@strawberry.type
class CreditBatch(relay.Node):
    id: relay.NodeID[str]
    project_id: strawberry.Private[uuid.UUID]
    vintage: int
    serial_prefix: str
    quantity: Mass
    remaining: Mass
    created_at: datetime

    @classmethod
    def from_row(cls, row: models.CreditBatch) -> "CreditBatch":
        return from_fields(cls, CREDIT_BATCH_FIELDS, row)

    resolve_nodes = nodes_loaded_by(lambda loaders: loaders.credit_batch_by_id)

    @strawberry.field
    async def project(self, info: Info) -> Project:
        row = await info.context.loaders.project_by_id.load(self.project_id)
        return Project.from_row(row)


@strawberry.type
class Bundle(relay.Node):
    id: relay.NodeID[str]
    name: str
    description: str
    unit_price: Money = strawberry.field(description="Price of one tonne.")
    created_at: datetime

    @classmethod
    def from_row(cls, row: models.Bundle) -> "Bundle":
        return from_fields(cls, BUNDLE_FIELDS, row)

    resolve_nodes = nodes_loaded_by(lambda loaders: loaders.bundle_by_id)

    @strawberry.field(description="Credits this bundle can draw on now.")
    async def available_mass(self, info: Info) -> Mass:
        grams = await info.context.loaders.available_grams_by_bundle.load(uuid.UUID(self.id))
        return Mass.from_grams(grams)

    @strawberry.field
    async def projects(self, info: Info) -> list[Project]:
        rows = await info.context.loaders.projects_by_bundle.load(uuid.UUID(self.id))
        return [Project.from_row(row) for row in rows]


plannable(Project, row_readers(PROJECT_FIELDS))
plannable(CreditBatch, row_readers(CREDIT_BATCH_FIELDS))
plannable(Bundle, row_readers(BUNDLE_FIELDS))


def percent(basis_points: int) -> Decimal:
    """Basis points as a percentage with two decimals: 6000 -> Decimal("60.00")."""
    return (Decimal(basis_points) / 100).quantize(Decimal("0.01"))


@strawberry.type
class PortfolioBundle:
    weight: Decimal = strawberry.field(description="Percentage of the portfolio, e.g. 60.00.")
    bundle: Bundle

    @classmethod
    def from_weighted(cls, weighted: catalog.WeightedBundle) -> "PortfolioBundle":
        return cls(weight=percent(weighted.weight_bp), bundle=Bundle.from_row(weighted.bundle))


@strawberry.type
class Portfolio(relay.Node):
    id: relay.NodeID[str]
    name: str
    currency: str
    is_default: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: models.Portfolio) -> "Portfolio":
        return cls(
            id=str(row.id),
            name=row.name,
            currency=row.currency,
            is_default=row.is_default,
            created_at=row.created_at,
        )

    resolve_nodes = nodes_loaded_by(lambda loaders: loaders.portfolio_by_id)

    @strawberry.field
    async def bundles(self, info: Info) -> list[PortfolioBundle]:
        rows = await info.context.loaders.weighted_bundles_by_portfolio.load(uuid.UUID(self.id))
        return [PortfolioBundle.from_weighted(row) for row in rows]


@strawberry.type
class ProjectConnection(relay.Connection[Project]):
    total_count: int


@strawberry.type
class BundleConnection(relay.Connection[Bundle]):
    total_count: int


@strawberry.type
class PortfolioConnection(relay.Connection[Portfolio]):
    total_count: int


@strawberry.type
class CatalogQueries:
    projects = connection_field(
        ProjectConnection,
        catalog.projects_of,
        models.Project,
        Project.from_row,
        description="Projects of the catalog, newest first.",
    )

    @strawberry.field(description="One project, or null.")
    async def project(self, info: Info, id: strawberry.ID) -> Project | None:
        info.context.require_principal()
        return await node_by_id(
            info, info.context.loaders.project_by_id, row_id_of(id, "Project"), Project.from_row
        )

    bundles = connection_field(
        BundleConnection,
        catalog.bundles_of,
        models.Bundle,
        Bundle.from_row,
        description="Bundles for sale, newest first.",
    )

    portfolios = connection_field(
        PortfolioConnection,
        catalog.portfolios_of,
        models.Portfolio,
        Portfolio.from_row,
        description="Portfolios, newest first; `isDefault` marks the default.",
    )


@strawberry.input
class CreateProjectInput:
    name: str
    type: ProjectType  # type: ignore[valid-type]
    registry: str = strawberry.field(description="e.g. Verra, Gold Standard, Puro.earth.")
    registry_id: str
    country: str = strawberry.field(description="ISO 3166 alpha-2 or alpha-3 code.")
    description: str = ""


@strawberry.type
class CreateProjectPayload:
    project: Project | None
    user_errors: list[UserError]


@strawberry.input
class AddCreditBatchInput:
    project_id: strawberry.ID
    vintage: int
    serial_prefix: str
    quantity: MassInput


@strawberry.type
class AddCreditBatchPayload:
    credit_batch: CreditBatch | None
    user_errors: list[UserError]


@strawberry.input
class CreateBundleInput:
    name: str
    unit_price: MoneyInput = strawberry.field(description="Price of one tonne.")
    project_ids: list[strawberry.ID]
    description: str = ""


@strawberry.type
class CreateBundlePayload:
    bundle: Bundle | None
    user_errors: list[UserError]


@strawberry.input
class PortfolioBundleInput:
    bundle_id: strawberry.ID
    weight: Decimal = strawberry.field(description="Percentage; a portfolio's weights sum to 100.")


@strawberry.input
class CreatePortfolioInput:
    name: str
    bundles: list[PortfolioBundleInput]
    is_default: bool = False


@strawberry.type
class PortfolioPayload:
    portfolio: Portfolio | None
    user_errors: list[UserError]


@strawberry.input
class SetDefaultPortfolioInput:
    portfolio_id: strawberry.ID


@strawberry.type
class CatalogMutations:
    @strawberry.mutation(description="Add a project to the catalog (admin only).")
    async def create_project(
        self, info: Info, input: CreateProjectInput
    ) -> CreateProjectPayload | None:
        principal = info.context.require_principal()
        outcome = await perform(
            info.context.db,
            lambda session: catalog.create_project(
                session,
                principal,
                name=input.name,
                project_type=models.ProjectType(input.type),
                registry=input.registry,
                registry_id=input.registry_id,
                country=input.country,
                description=input.description,
            ),
        )
        return CreateProjectPayload(
            project=outcome.map(Project.from_row),
            user_errors=outcome.user_errors,
        )

    @strawberry.mutation(
        description="Add a batch of a project's credits to inventory (admin only); orders "
        "waiting for stock are retried."
    )
    async def add_credit_batch(
        self, info: Info, input: AddCreditBatchInput
    ) -> AddCreditBatchPayload | None:
        principal = info.context.require_principal()

        async def use_case(session: Any) -> models.CreditBatch:
            return await receive_stock(
                session,
                principal,
                project_id=parse_global_id(input.project_id, "Project", "projectId"),
                vintage=input.vintage,
                serial_prefix=input.serial_prefix,
                quantity_grams=input.quantity.to_grams("quantity"),
            )

        outcome = await perform(info.context.db, use_case)
        if outcome.value is not None:
            info.context.signal_change()
        return AddCreditBatchPayload(
            credit_batch=outcome.map(CreditBatch.from_row),
            user_errors=outcome.user_errors,
        )

    @strawberry.mutation(description="Create a bundle over one or more projects (admin only).")
    async def create_bundle(
        self, info: Info, input: CreateBundleInput
    ) -> CreateBundlePayload | None:
        principal = info.context.require_principal()

        async def use_case(session: Any) -> models.Bundle:
            project_ids = [
                parse_global_id(pid, "Project", f"projectIds.{index}")
                for index, pid in enumerate(input.project_ids)
            ]
            bundle, _ = await catalog.create_bundle(
                session,
                principal,
                name=input.name,
                unit_price=input.unit_price.amount,
                currency=input.unit_price.currency,
                project_ids=project_ids,
                description=input.description,
            )
            return bundle

        outcome = await perform(info.context.db, use_case)
        return CreateBundlePayload(
            bundle=outcome.map(Bundle.from_row),
            user_errors=outcome.user_errors,
        )

    @strawberry.mutation(description="Create a portfolio; weights must sum to 100 (admin only).")
    async def create_portfolio(
        self, info: Info, input: CreatePortfolioInput
    ) -> PortfolioPayload | None:
        principal = info.context.require_principal()

        async def use_case(session: Any) -> models.Portfolio:
            weights = [
                (parse_global_id(item.bundle_id, "Bundle", f"bundles.{i}.bundleId"), item.weight)
                for i, item in enumerate(input.bundles)
            ]
            created = await catalog.create_portfolio(
                session, principal, name=input.name, weights=weights, make_default=input.is_default
            )
            return created.portfolio

        outcome = await perform(info.context.db, use_case)
        return PortfolioPayload(
            portfolio=outcome.map(Portfolio.from_row),
            user_errors=outcome.user_errors,
        )

    @strawberry.mutation(description="Make a portfolio the account's default (admin only).")
    async def set_default_portfolio(
        self, info: Info, input: SetDefaultPortfolioInput
    ) -> PortfolioPayload | None:
        principal = info.context.require_principal()

        async def use_case(session: Any) -> models.Portfolio:
            portfolio_id = parse_global_id(input.portfolio_id, "Portfolio", "portfolioId")
            return await catalog.set_default_portfolio(session, principal, portfolio_id)

        outcome = await perform(info.context.db, use_case)
        return PortfolioPayload(
            portfolio=outcome.map(Portfolio.from_row),
            user_errors=outcome.user_errors,
        )
