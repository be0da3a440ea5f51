"""Stock use cases: add a credit batch, count unallocated grams, lock batches and take from them.

Nothing else writes `credit_batch.remaining_grams`. Taking is two steps inside the caller's
transaction: `lock_stock` locks every candidate batch in id order (so concurrent takers never
deadlock) and plans takes in memory, oldest vintage first; `LockedStock.apply` then runs one
guarded decrement per batch touched (`remaining >= :q` in the WHERE, a CHECK on the table),
which makes overselling impossible even if a lock were missing.
"""

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.models import Mode
from app.accounts.service import Principal
from app.catalog import service as catalog
from app.catalog.models import BundleProject, CreditBatch
from app.errors import InvalidInput

MAX_BATCH_GRAMS = 10**15  # a billion tonnes: anything larger is a typo
SERIAL_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")


class StockChanged(Exception):
    """A guarded decrement found less than was planned: the caller's transaction must be
    rolled back and retried (only possible if a batch changed without our lock)."""


async def add_stock(
    session: AsyncSession,
    principal: Principal,
    *,
    project_id: uuid.UUID,
    vintage: int,
    serial_prefix: str,
    quantity_grams: int,
) -> CreditBatch:
    """A new credit batch of one of the catalog's projects, all of it unallocated."""
    principal.require_admin()
    project = await catalog.get_project(session, principal, project_id)
    if not 1990 <= vintage <= 2100:
        raise InvalidInput("Vintage must be a year between 1990 and 2100.", "vintage")
    if not SERIAL_PREFIX.fullmatch(serial_prefix):
        raise InvalidInput(
            "Serial prefix: 1-100 letters, digits or . _ : / - characters.", "serialPrefix"
        )
    if quantity_grams <= 0:
        raise InvalidInput("Quantity must be positive.", "quantity.amount")
    if quantity_grams > MAX_BATCH_GRAMS:
        raise InvalidInput("Quantity is implausibly large.", "quantity.amount")
    batch = CreditBatch(
        account_id=principal.account_id,
        mode=principal.mode,
        project_id=project.id,
        vintage=vintage,
        serial_prefix=serial_prefix,
        quantity_grams=quantity_grams,
        remaining_grams=quantity_grams,
    )
    session.add(batch)
    await session.flush()
    return batch


async def available_grams_by_bundle(
    session: AsyncSession, principal: Principal, bundle_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Unallocated stock each bundle can draw on now (batches of its projects)."""
    rows = (
        await session.exec(
            select(BundleProject.bundle_id, func.coalesce(func.sum(CreditBatch.remaining_grams), 0))
            .join(CreditBatch, col(CreditBatch.project_id) == col(BundleProject.project_id))
            .where(
                *catalog.catalog_of(principal, CreditBatch),
                col(BundleProject.bundle_id).in_(bundle_ids),
            )
            .group_by(col(BundleProject.bundle_id))
        )
    ).all()
    available = {bundle_id: 0 for bundle_id in bundle_ids}
    available.update({bundle_id: int(total) for bundle_id, total in rows})
    return available


async def available_grams_by_project(
    session: AsyncSession, principal: Principal, project_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    rows = (
        await session.exec(
            select(CreditBatch.project_id, func.coalesce(func.sum(CreditBatch.remaining_grams), 0))
            .where(
                *catalog.catalog_of(principal, CreditBatch),
                col(CreditBatch.project_id).in_(project_ids),
            )
            .group_by(col(CreditBatch.project_id))
        )
    ).all()
    available = {project_id: 0 for project_id in project_ids}
    available.update({project_id: int(total) for project_id, total in rows})
    return available


@dataclass(frozen=True)
class Take:
    """Grams planned out of one batch, with the serials they carry (inclusive range)."""

    batch: CreditBatch
    bundle_id: uuid.UUID
    grams: int
    serial_start: int

    @property
    def serial_end(self) -> int:
        return self.serial_start + self.grams - 1


@dataclass
class LockedStock:
    """Batches locked in this transaction, each bundle's oldest vintage first, with what is
    left of them after the takes planned so far."""

    batches_by_bundle: dict[uuid.UUID, list[CreditBatch]]
    remaining: dict[uuid.UUID, int]
    taken: dict[uuid.UUID, int] = field(default_factory=dict)

    def take(
        self, account_id: uuid.UUID, mode: Mode, needs: Sequence[tuple[uuid.UUID, int]]
    ) -> list[Take] | None:
        """Plan `(bundle, grams)` needs for one owner, all or nothing: the takes, or None
        (and nothing planned) when the stock cannot cover every need."""
        takes: list[Take] = []
        planned: dict[uuid.UUID, int] = {}
        for bundle_id, grams in needs:
            need = grams
            for batch in self.batches_by_bundle.get(bundle_id, []):
                if batch.account_id != account_id or batch.mode != mode:
                    continue
                left = self.remaining[batch.id] - planned.get(batch.id, 0)
                grams_here = min(need, left)
                if grams_here <= 0:
                    continue
                start = batch.quantity_grams - left
                takes.append(Take(batch, bundle_id, grams_here, start))
                planned[batch.id] = planned.get(batch.id, 0) + grams_here
                need -= grams_here
                if need == 0:
                    break
            if need > 0:
                return None
        for batch_id, grams in planned.items():
            self.remaining[batch_id] -= grams
            self.taken[batch_id] = self.taken.get(batch_id, 0) + grams
        return takes

    async def apply(self, session: AsyncSession) -> None:
        """Decrement every batch by what was planned from it: one guarded UPDATE per batch,
        in id order. Raises StockChanged if a batch no longer holds what was planned."""
        owners = {
            batch.id: (batch.account_id, batch.mode)
            for batches in self.batches_by_bundle.values()
            for batch in batches
        }
        for batch_id in sorted(self.taken):
            grams = self.taken[batch_id]
            account_id, mode = owners[batch_id]
            result = await session.exec(
                update(CreditBatch)
                .where(
                    col(CreditBatch.id) == batch_id,
                    # Redundant with the id, but it tells the data versions the scope
                    # (app/data_versions.py) without a SELECT of their own.
                    col(CreditBatch.account_id) == account_id,
                    col(CreditBatch.mode) == mode,
                    col(CreditBatch.remaining_grams) >= grams,
                )
                .values(remaining_grams=col(CreditBatch.remaining_grams) - grams)
            )
            if result.rowcount != 1:
                raise StockChanged(batch_id)
        self.taken.clear()


async def lock_stock(session: AsyncSession, bundle_ids: Iterable[uuid.UUID]) -> LockedStock:
    """Lock every batch with stock left that these bundles draw on (in id order: PostgreSQL
    row locks; SQLite's BEGIN IMMEDIATE already holds the one write lock) and index them by
    bundle, oldest vintage first."""
    bundle_ids = list(set(bundle_ids))
    links = (
        await session.exec(
            select(BundleProject).where(col(BundleProject.bundle_id).in_(bundle_ids))
        )
    ).all()
    batches = (
        await session.exec(
            select(CreditBatch)
            .where(
                col(CreditBatch.project_id).in_({link.project_id for link in links}),
                col(CreditBatch.remaining_grams) > 0,
            )
            .order_by(col(CreditBatch.id))
            .with_for_update()
        )
    ).all()
    by_vintage = sorted(batches, key=lambda b: (b.vintage, b.created_at, b.id))
    projects_by_bundle: dict[uuid.UUID, set[uuid.UUID]] = {}
    for link in links:
        projects_by_bundle.setdefault(link.bundle_id, set()).add(link.project_id)
    return LockedStock(
        batches_by_bundle={
            bundle_id: [b for b in by_vintage if b.project_id in projects]
            for bundle_id, projects in projects_by_bundle.items()
        },
        remaining={batch.id: batch.remaining_grams for batch in batches},
    )
