"""Use cases of the accounts domain: accounts, subaccounts, API keys and authentication."""

import functools
import re
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.accounts.keys import display_prefix, generate_api_key, hash_api_key, mode_of_key
from app.accounts.models import Account, AccountStatus, ApiKey, Mode, Subaccount
from app.accounts.principals import forget_principals
from app.db import utcnow
from app.errors import DomainError, ErrorCode, Forbidden, InvalidInput, NotFound
from app.text import clean_text

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
MAX_NAME_LENGTH = 200
# A key's last-used time is written at most this often, so that reads stay reads.
LAST_USED_RESOLUTION = timedelta(seconds=60)
# Keys looked up per statement by `keys_losing_streams`, well under every driver's
# bind-parameter limit.
KEY_LOOKUP_CHUNK = 500


class NotAuthenticated(Exception):
    """No usable API key: missing, malformed, unknown or revoked."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an account in one mode, maybe narrowed to a subaccount."""

    account: Account
    mode: Mode
    api_key_id: uuid.UUID
    is_admin: bool
    subaccount: Subaccount | None = None

    @property
    def account_id(self) -> uuid.UUID:
        return self.account.id

    @property
    def subaccount_id(self) -> uuid.UUID | None:
        return self.subaccount.id if self.subaccount else None

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("This operation needs an API key with the admin role.")

    def require_active(self) -> None:
        if self.account.status is not AccountStatus.ACTIVE:
            raise DomainError(
                ErrorCode.ACCOUNT_SUSPENDED, f"Account {self.account.slug!r} is suspended."
            )


def owned_by(principal: Principal, model: Any) -> list[ColumnElement[bool]]:
    """Filters for rows the principal may see in a table with account_id, mode, subaccount_id.

    Like Stripe Connect: a request scoped to a subaccount sees only that subaccount's rows; an
    unscoped request sees only the account's own rows (subaccount_id IS NULL).
    """
    return list(
        _scope_filters(model, principal.account_id, principal.mode, principal.subaccount_id)
    )


@functools.lru_cache(maxsize=1024)
def _scope_filters(
    model: Any, account_id: uuid.UUID, mode: Mode, subaccount_id: uuid.UUID | None
) -> tuple[ColumnElement[bool], ...]:
    # Built once per scope and table: clauses are immutable, and building these three
    # (comparing each value with its column's type) was a tenth of a planned nested read.
    subaccount = col(model.subaccount_id)
    return (
        col(model.account_id) == account_id,
        col(model.mode) == mode,
        subaccount == subaccount_id if subaccount_id is not None else subaccount.is_(None),
    )


def can_see(
    principal: Principal, account_id: uuid.UUID, mode: Mode, subaccount_id: uuid.UUID | None
) -> bool:
    """`owned_by` for one row already in memory (e.g. an event from the broker)."""
    return (
        account_id == principal.account_id
        and mode == principal.mode
        and subaccount_id == principal.subaccount_id
    )


def _clean_name(name: str) -> str:
    return clean_text(name, "name", max_length=MAX_NAME_LENGTH, label="Name")


async def create_account(session: AsyncSession, name: str, slug: str) -> Account:
    if not SLUG_PATTERN.fullmatch(slug):
        raise InvalidInput("Slug must be 1-64 lowercase letters, digits or inner hyphens.", "slug")
    account = Account(name=_clean_name(name), slug=slug)
    try:
        async with session.begin_nested():  # added inside: see emissions.products.upsert_product
            session.add(account)
            await session.flush()
    except IntegrityError as error:
        raise InvalidInput(f"An account with slug {slug!r} already exists.", "slug") from error
    return account


async def get_account_by_slug(session: AsyncSession, slug: str) -> Account:
    account = (await session.exec(select(Account).where(Account.slug == slug))).first()
    if account is None:
        raise NotFound(f"No account with slug {slug!r}.", "slug")
    return account


async def set_account_status(session: AsyncSession, slug: str, status: AccountStatus) -> Account:
    account = await get_account_by_slug(session, slug)
    account.status = status
    await session.flush()
    forget_principals()
    return account


async def create_api_key(
    session: AsyncSession,
    account_id: uuid.UUID,
    mode: Mode,
    *,
    name: str,
    is_admin: bool = False,
    plain_key: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key and return it with its plain text, which is never stored nor shown again.

    `plain_key` is only for the demo seed, whose keys are derived from the server secret.
    """
    plain = plain_key or generate_api_key(mode)
    if mode_of_key(plain) is not mode:
        raise InvalidInput("The key's prefix does not match its mode.", "mode")
    api_key = ApiKey(
        account_id=account_id,
        mode=mode,
        name=_clean_name(name),
        display_prefix=display_prefix(plain),
        key_hash=hash_api_key(plain),
        is_admin=is_admin,
    )
    session.add(api_key)
    await session.flush()
    return api_key, plain


async def create_api_key_as(
    session: AsyncSession, principal: Principal, *, name: str, is_admin: bool
) -> tuple[ApiKey, str]:
    """A key for the principal's own account and mode: a test key never mints a live key."""
    principal.require_admin()
    return await create_api_key(
        session, principal.account_id, principal.mode, name=name, is_admin=is_admin
    )


async def revoke_api_key(session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> ApiKey:
    principal.require_admin()
    api_key = (
        await session.exec(
            select(ApiKey).where(
                ApiKey.id == key_id,
                ApiKey.account_id == principal.account_id,
                ApiKey.mode == principal.mode,
            )
        )
    ).first()
    if api_key is None:
        raise NotFound("No such API key.", "id")
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        await session.flush()
        forget_principals()
    return api_key


def api_keys_of(principal: Principal) -> SelectOfScalar[ApiKey]:
    """The keys of the principal's account and mode, for paging by the caller (admin only)."""
    principal.require_admin()
    return select(ApiKey).where(
        ApiKey.account_id == principal.account_id, ApiKey.mode == principal.mode
    )


async def create_subaccount(
    session: AsyncSession, principal: Principal, *, name: str, external_ref: str | None = None
) -> Subaccount:
    if principal.subaccount is not None:
        raise Forbidden("A request scoped to a subaccount cannot create subaccounts.")
    if external_ref is not None and len(external_ref) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"External reference must be at most {MAX_NAME_LENGTH} characters.", "externalRef"
        )
    subaccount = Subaccount(
        account_id=principal.account_id,
        mode=principal.mode,
        name=_clean_name(name),
        external_ref=external_ref,
    )
    session.add(subaccount)
    await session.flush()
    return subaccount


def subaccounts_of(principal: Principal) -> SelectOfScalar[Subaccount]:
    """The subaccounts a principal may see, for paging by the caller: all of the account's in
    its mode, or, for a request scoped to a subaccount, that one alone — a subaccount is a
    customer of the account, and must not learn of its siblings."""
    statement = select(Subaccount).where(
        Subaccount.account_id == principal.account_id, Subaccount.mode == principal.mode
    )
    if principal.subaccount_id is not None:
        statement = statement.where(Subaccount.id == principal.subaccount_id)
    return statement


async def subaccounts_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> Sequence[Subaccount]:
    return (await session.exec(subaccounts_of(principal).where(col(Subaccount.id).in_(ids)))).all()


async def authenticate(
    session: AsyncSession,
    plain_key: str | None,
    subaccount_id: uuid.UUID | None = None,
    *,
    now: datetime | None = None,
) -> tuple[Principal, bool]:
    """The principal for a key, and whether its last-used time is stale and worth a write.

    Raises NotAuthenticated for a missing, malformed, unknown or revoked key, and Forbidden
    for a subaccount that is not the key's account's in the key's mode.
    """
    if not plain_key or mode_of_key(plain_key) is None:
        raise NotAuthenticated("A valid API key is required.")
    row = (
        await session.exec(
            select(ApiKey, Account)
            .join(Account, col(Account.id) == col(ApiKey.account_id))
            .where(ApiKey.key_hash == hash_api_key(plain_key))
        )
    ).one_or_none()
    if row is None:
        raise NotAuthenticated("The API key is not valid.")
    api_key, account = row
    if api_key.revoked_at is not None:
        raise NotAuthenticated("The API key has been revoked.")
    subaccount = None
    if subaccount_id is not None:
        subaccount = (
            await session.exec(
                select(Subaccount).where(
                    Subaccount.id == subaccount_id,
                    Subaccount.account_id == account.id,
                    Subaccount.mode == api_key.mode,
                )
            )
        ).first()
        if subaccount is None:
            raise Forbidden("Unknown subaccount for this key.", "X-Subaccount-Id")
    principal = Principal(
        account=account,
        mode=api_key.mode,
        api_key_id=api_key.id,
        is_admin=api_key.is_admin,
        subaccount=subaccount,
    )
    now = now or utcnow()
    stale = api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION
    return principal, stale


class StreamRefusal(StrEnum):
    """Why a key may no longer hold a live stream (an open WebSocket)."""

    KEY_REVOKED = "The API key has been revoked."
    ACCOUNT_SUSPENDED = "The account is suspended."


def stream_refusal(principal: Principal) -> StreamRefusal | None:
    """Whether a freshly authenticated principal may open a live stream."""
    if principal.account.status is not AccountStatus.ACTIVE:
        return StreamRefusal.ACCOUNT_SUSPENDED
    return None


async def keys_losing_streams(
    session: AsyncSession, key_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, StreamRefusal]:
    """Of these keys, those whose open streams must end: revoked (or gone), or of a suspended
    account. One statement per KEY_LOOKUP_CHUNK keys, however many streams each key holds."""
    refused: dict[uuid.UUID, StreamRefusal] = {}
    ids = list(key_ids)
    for start in range(0, len(ids), KEY_LOOKUP_CHUNK):
        chunk = ids[start : start + KEY_LOOKUP_CHUNK]
        rows = (
            await session.exec(
                select(ApiKey.id, ApiKey.revoked_at, Account.status)
                .join(Account, col(Account.id) == col(ApiKey.account_id))
                .where(col(ApiKey.id).in_(chunk))
            )
        ).all()
        found = set()
        for key_id, revoked_at, status in rows:
            found.add(key_id)
            if revoked_at is not None:
                refused[key_id] = StreamRefusal.KEY_REVOKED
            elif status is not AccountStatus.ACTIVE:
                refused[key_id] = StreamRefusal.ACCOUNT_SUSPENDED
        refused.update(dict.fromkeys(set(chunk) - found, StreamRefusal.KEY_REVOKED))
    return refused


async def record_key_use(session: AsyncSession, api_key_id: uuid.UUID) -> None:
    await session.exec(
        update(ApiKey).where(col(ApiKey.id) == api_key_id).values(last_used_at=utcnow())
    )
