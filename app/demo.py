"""The demo data `serve` seeds on an empty database: the `demo` account and its keys."""

from dataclasses import dataclass

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts import service as accounts
from app.accounts.keys import derive_demo_api_key, hash_api_key
from app.accounts.models import Account, ApiKey, Mode
from app.emissions.demo import seed_demo_products
from app.inventory.demo import seed_demo_catalog

DEMO_SLUG = "demo"
DEMO_NAME = "Demo Company"


@dataclass(frozen=True)
class DemoKey:
    mode: Mode
    admin: bool
    key: str


def demo_keys(secret: str) -> list[DemoKey]:
    return [
        DemoKey(mode, admin, derive_demo_api_key(secret, mode, admin=admin))
        for mode in (Mode.TEST, Mode.LIVE)
        for admin in (False, True)
    ]


async def is_empty(session: AsyncSession) -> bool:
    return (await session.exec(select(Account.id).limit(1))).first() is None


async def seed_demo(session: AsyncSession, secret: str) -> list[DemoKey]:
    """Create what is missing of the demo account and its keys; safe to run again.

    Returns the demo keys that are usable (a revoked demo key stays revoked).
    """
    account = (await session.exec(select(Account).where(Account.slug == DEMO_SLUG))).first()
    if account is None:
        account = await accounts.create_account(session, DEMO_NAME, DEMO_SLUG)
    for mode in Mode:
        await seed_demo_catalog(session, account, mode)
        await seed_demo_products(session, account.id, mode)
    for demo in demo_keys(secret):
        if await _stored_key(session, demo) is None:
            label = f"Demo {demo.mode.value.lower()} key{' (admin)' if demo.admin else ''}"
            await accounts.create_api_key(
                session, account.id, demo.mode, name=label, is_admin=demo.admin, plain_key=demo.key
            )
    return await usable_demo_keys(session, secret)


async def _stored_key(session: AsyncSession, demo: DemoKey) -> ApiKey | None:
    return (
        await session.exec(select(ApiKey).where(ApiKey.key_hash == hash_api_key(demo.key)))
    ).first()


async def usable_demo_keys(session: AsyncSession, secret: str) -> list[DemoKey]:
    """The demo keys that exist and are not revoked (none on a database without the demo)."""
    usable = []
    for demo in demo_keys(secret):
        stored = await _stored_key(session, demo)
        if stored is not None and stored.revoked_at is None:
            usable.append(demo)
    return usable
