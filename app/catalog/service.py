"""Use cases of the catalog: manage projects, bundles and portfolios; read them in batches.

Stock (adding credit batches, counting and taking what is left) is app/inventory's."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.accounts.service import Principal
from app.catalog.models import (
    Bundle,
    BundleProject,
    CreditBatch,
    Portfolio,
    PortfolioBundle,
    Project,
    ProjectType,
)
from app.countries import country_alpha2
from app.errors import InvalidInput, NotFound
from app.text import clean_text
from app.units import currency_exponent, minor_from

MAX_TEXT = 200
MAX_DESCRIPTION = 2000
MAX_PRICE_MINOR = 10**12  # ten billion a tonne in a 2-decimal currency: surely a typo
BASIS_POINTS = 10_000


def catalog_of(principal: Principal, model: Any) -> list[ColumnElement[bool]]:
    """The catalog is the account's, in the key's mode; subaccounts buy from it too."""
    return [col(model.account_id) == principal.account_id, col(model.mode) == principal.mode]


async def create_project(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    project_type: ProjectType,
    registry: str,
    registry_id: str,
    country: str,
    description: str = "",
) -> Project:
    principal.require_admin()
    project = Project(
        account_id=principal.account_id,
        mode=principal.mode,
        name=clean_text(name, "name", max_length=MAX_TEXT),
        project_type=project_type,
        registry_name=clean_text(registry, "registry", max_length=100),
        registry_id=clean_text(registry_id, "registryId", max_length=100),
        country=country_alpha2(country, "country"),
        description=clean_text(
            description, "description", max_length=MAX_DESCRIPTION, required=False
        ),
    )
    duplicate = (
        await session.exec(
            select(Project.id).where(
                *catalog_of(principal, Project),
                Project.registry_name == project.registry_name,
                Project.registry_id == project.registry_id,
            )
        )
    ).first()
    if duplicate is not None:
        raise InvalidInput("A project with this registry id already exists.", "registryId")
    session.add(project)
    await session.flush()
    return project


async def get_project(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID
) -> Project:
    project = (
        await session.exec(
            select(Project).where(*catalog_of(principal, Project), Project.id == project_id)
        )
    ).first()
    if project is None:
        raise NotFound("No such project.", "projectId")
    return project


async def create_bundle(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    unit_price: Decimal,
    currency: str,
    project_ids: Sequence[uuid.UUID],
    description: str = "",
) -> tuple[Bundle, list[uuid.UUID]]:
    principal.require_admin()
    currency = currency.upper()
    currency_exponent(currency, "unitPrice.currency")
    price_minor = minor_from(unit_price, currency, "unitPrice.amount")
    if price_minor <= 0:
        raise InvalidInput("Price per tonne must be positive.", "unitPrice.amount")
    if price_minor > MAX_PRICE_MINOR:
        raise InvalidInput("Price per tonne is implausibly large.", "unitPrice.amount")
    if not project_ids:
        raise InvalidInput("A bundle draws on at least one project.", "projectIds")
    unique_ids = list(dict.fromkeys(project_ids))
    found = set(
        (
            await session.exec(
                select(Project.id).where(
                    *catalog_of(principal, Project), col(Project.id).in_(unique_ids)
                )
            )
        ).all()
    )
    for index, project_id in enumerate(project_ids):
        if project_id not in found:
            raise NotFound("No such project.", f"projectIds.{index}")
    bundle = Bundle(
        account_id=principal.account_id,
        mode=principal.mode,
        name=clean_text(name, "name", max_length=MAX_TEXT),
        description=clean_text(
            description, "description", max_length=MAX_DESCRIPTION, required=False
        ),
        unit_price_minor=price_minor,
        currency=currency,
    )
    session.add(bundle)
    await session.flush()
    session.add_all([BundleProject(bundle_id=bundle.id, project_id=pid) for pid in unique_ids])
    await session.flush()
    return bundle, unique_ids


@dataclass(frozen=True)
class WeightedBundle:
    bundle: Bundle
    weight_bp: int


@dataclass(frozen=True)
class PortfolioWithBundles:
    portfolio: Portfolio
    bundles: list[WeightedBundle]


def _basis_points(weight: Decimal, field: str) -> int:
    points = weight * 100
    if points != points.to_integral_value() or not 0 < points <= BASIS_POINTS:
        raise InvalidInput("Weight is a percentage above 0, at most 100, 2 decimals.", field)
    return int(points)


async def create_portfolio(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    weights: Sequence[tuple[uuid.UUID, Decimal]],
    make_default: bool = False,
) -> PortfolioWithBundles:
    principal.require_admin()
    if not weights:
        raise InvalidInput("A portfolio holds at least one bundle.", "bundles")
    points = [_basis_points(weight, f"bundles.{i}.weight") for i, (_, weight) in enumerate(weights)]
    if sum(points) != BASIS_POINTS:
        raise InvalidInput("Weights must sum to 100.", "bundles")
    bundle_ids = [bundle_id for bundle_id, _ in weights]
    if len(set(bundle_ids)) != len(bundle_ids):
        raise InvalidInput("Each bundle may appear once.", "bundles")
    bundles = {
        bundle.id: bundle
        for bundle in (
            await session.exec(
                select(Bundle).where(*catalog_of(principal, Bundle), col(Bundle.id).in_(bundle_ids))
            )
        ).all()
    }
    for index, bundle_id in enumerate(bundle_ids):
        if bundle_id not in bundles:
            raise NotFound("No such bundle.", f"bundles.{index}.bundleId")
    currencies = {bundles[bundle_id].currency for bundle_id in bundle_ids}
    if len(currencies) != 1:
        raise InvalidInput("All bundles of a portfolio must be priced in one currency.", "bundles")
    portfolio = Portfolio(
        account_id=principal.account_id,
        mode=principal.mode,
        name=clean_text(name, "name", max_length=MAX_TEXT),
        currency=currencies.pop(),
    )
    session.add(portfolio)
    await session.flush()
    session.add_all(
        [
            PortfolioBundle(
                portfolio_id=portfolio.id, bundle_id=bundle_id, position=position, weight_bp=bp
            )
            for position, (bundle_id, bp) in enumerate(zip(bundle_ids, points, strict=True))
        ]
    )
    await session.flush()
    if make_default:
        await set_default_portfolio(session, principal, portfolio.id)
    return PortfolioWithBundles(
        portfolio,
        [WeightedBundle(bundles[b], bp) for b, bp in zip(bundle_ids, points, strict=True)],
    )


async def set_default_portfolio(
    session: AsyncSession, principal: Principal, portfolio_id: uuid.UUID
) -> Portfolio:
    principal.require_admin()
    portfolio = await get_portfolio(session, principal, portfolio_id, field="portfolioId")
    # Clear first: the partial unique index allows one default at a time.
    await session.exec(
        update(Portfolio)
        .where(*catalog_of(principal, Portfolio), col(Portfolio.is_default))
        .values(is_default=False)
    )
    await session.exec(
        update(Portfolio).where(col(Portfolio.id) == portfolio.id).values(is_default=True)
    )
    portfolio.is_default = True
    return portfolio


async def get_portfolio(
    session: AsyncSession, principal: Principal, portfolio_id: uuid.UUID, *, field: str
) -> Portfolio:
    portfolio = (
        await session.exec(
            select(Portfolio).where(*catalog_of(principal, Portfolio), Portfolio.id == portfolio_id)
        )
    ).first()
    if portfolio is None:
        raise NotFound("No such portfolio.", field)
    return portfolio


async def portfolio_for_order(
    session: AsyncSession, principal: Principal, portfolio_id: uuid.UUID | None
) -> PortfolioWithBundles:
    """The named portfolio, or the account's default, with its weighted bundles in order."""
    if portfolio_id is not None:
        portfolio = await get_portfolio(session, principal, portfolio_id, field="portfolioId")
    else:
        found = (
            await session.exec(
                select(Portfolio).where(
                    *catalog_of(principal, Portfolio), col(Portfolio.is_default)
                )
            )
        ).first()
        if found is None:
            raise NotFound("The account has no default portfolio; pass portfolioId.", "portfolioId")
        portfolio = found
    rows = (
        await session.exec(
            select(PortfolioBundle, Bundle)
            .join(Bundle, col(Bundle.id) == col(PortfolioBundle.bundle_id))
            .where(PortfolioBundle.portfolio_id == portfolio.id)
            .order_by(col(PortfolioBundle.position))
        )
    ).all()
    return PortfolioWithBundles(portfolio, [WeightedBundle(b, pb.weight_bp) for pb, b in rows])


def projects_of(principal: Principal) -> SelectOfScalar[Project]:
    return select(Project).where(*catalog_of(principal, Project))


def bundles_of(principal: Principal) -> SelectOfScalar[Bundle]:
    return select(Bundle).where(*catalog_of(principal, Bundle))


def portfolios_of(principal: Principal) -> SelectOfScalar[Portfolio]:
    return select(Portfolio).where(*catalog_of(principal, Portfolio))


# Batch reads for the graph's dataloaders: one query for any number of keys.


async def projects_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> Sequence[Project]:
    return (await session.exec(projects_of(principal).where(col(Project.id).in_(ids)))).all()


async def bundles_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> Sequence[Bundle]:
    return (await session.exec(bundles_of(principal).where(col(Bundle.id).in_(ids)))).all()


async def portfolios_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> Sequence[Portfolio]:
    return (await session.exec(portfolios_of(principal).where(col(Portfolio.id).in_(ids)))).all()


async def credit_batches_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> Sequence[CreditBatch]:
    statement = select(CreditBatch).where(
        *catalog_of(principal, CreditBatch), col(CreditBatch.id).in_(ids)
    )
    return (await session.exec(statement)).all()


async def weighted_bundles_of_portfolios(
    session: AsyncSession, principal: Principal, portfolio_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[WeightedBundle]]:
    rows = (
        await session.exec(
            select(PortfolioBundle, Bundle)
            .join(Bundle, col(Bundle.id) == col(PortfolioBundle.bundle_id))
            .where(
                *catalog_of(principal, Bundle), col(PortfolioBundle.portfolio_id).in_(portfolio_ids)
            )
            .order_by(col(PortfolioBundle.portfolio_id), col(PortfolioBundle.position))
        )
    ).all()
    grouped: dict[uuid.UUID, list[WeightedBundle]] = {}
    for link, bundle in rows:
        grouped.setdefault(link.portfolio_id, []).append(WeightedBundle(bundle, link.weight_bp))
    return grouped


async def projects_of_bundles(
    session: AsyncSession, principal: Principal, bundle_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Project]]:
    rows = (
        await session.exec(
            select(BundleProject.bundle_id, Project)
            .join(Project, col(Project.id) == col(BundleProject.project_id))
            .where(*catalog_of(principal, Project), col(BundleProject.bundle_id).in_(bundle_ids))
            .order_by(col(Project.name))
        )
    ).all()
    grouped: dict[uuid.UUID, list[Project]] = {}
    for bundle_id, project in rows:
        grouped.setdefault(bundle_id, []).append(project)
    return grouped


async def credit_batches_of_projects(
    session: AsyncSession, principal: Principal, project_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[CreditBatch]]:
    rows = (
        await session.exec(
            select(CreditBatch)
            .where(
                *catalog_of(principal, CreditBatch), col(CreditBatch.project_id).in_(project_ids)
            )
            .order_by(col(CreditBatch.vintage), col(CreditBatch.created_at))
        )
    ).all()
    grouped: dict[uuid.UUID, list[CreditBatch]] = {}
    for batch in rows:
        grouped.setdefault(batch.project_id, []).append(batch)
    return grouped
