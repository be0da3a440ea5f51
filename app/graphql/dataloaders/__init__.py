"""Per-request batch loaders; each batch opens its own short session (sessions are not shared)."""

from dataclasses import dataclass

from app.accounts.service import Principal
from app.db import Database
from app.graphql.dataloaders.subaccounts import SubaccountLoader


@dataclass
class DataLoaders:
    subaccount_by_id: SubaccountLoader


def create_dataloaders(db: Database, principal: Principal | None) -> DataLoaders:
    """Fresh loaders for one operation; must be called inside the running event loop."""
    return DataLoaders(subaccount_by_id=SubaccountLoader(db, principal))
