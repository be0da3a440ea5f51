"""Recently authenticated principals, kept a few seconds so that a known key's requests read
no key row; revocation and suspension still bite within those seconds."""

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from cachetools import TTLCache

from app.accounts.keys import hash_api_key

if TYPE_CHECKING:  # the service forgets principals; this module only holds them
    from app.accounts.service import Principal

log = logging.getLogger(__name__)
MAX_PRINCIPALS = 10_000
# Past this fraction of its time, a kept principal is authenticated again in the background.
REFRESH_AFTER = 0.5
Key = tuple[str, uuid.UUID | None]

# Every cache of this process, so that a revocation or suspension made here empties them at
# once (see forget_principals); those made by other processes wait out the TTL.
_caches: "weakref.WeakSet[PrincipalCache]" = weakref.WeakSet()


class PrincipalCache:
    """Who a key (with a subaccount or none) authenticated as, for at most `seconds`.

    Only successes are kept, by the key's hash, in a bounded LRU: a flood of bad keys stores
    nothing, and many good ones evict the least recently used. `seconds` is the bound within
    which a revocation or suspension elsewhere is seen; 0 keeps nothing.

    A key in steady use is authenticated again before its entry runs out, off the request
    path: a `get` given `refresh` that finds its entry past `REFRESH_AFTER` of its time
    answers with it and starts `refresh` in the background (once per entry at a time), whose
    principal replaces the entry, for `seconds` from then. A refresh that fails (the key was
    revoked, the database did not answer) drops the entry: the next request authenticates
    itself and meets the refusal or the error, as it would have once the entry ran out. So no
    entry is older than `seconds`, and a busy client's requests no longer take turns paying
    for the key read and the last-used write (on a loaded loop, the slowest of its queries).
    """

    def __init__(self, seconds: float, maxsize: int = MAX_PRINCIPALS) -> None:
        self.seconds = seconds
        self._entries: TTLCache[Key, tuple[Principal, float]] | None = (
            TTLCache(maxsize=maxsize, ttl=seconds, timer=time.monotonic) if seconds > 0 else None
        )
        self._refreshing: dict[Key, asyncio.Task[None]] = {}
        self._cleared = 0  # a refresh begun before a `clear` keeps nothing
        _caches.add(self)

    def get(
        self,
        plain_key: str | None,
        subaccount_id: uuid.UUID | None,
        refresh: "Callable[[], Awaitable[Principal]] | None" = None,
    ) -> "Principal | None":
        if self._entries is None or not plain_key:
            return None
        key = (hash_api_key(plain_key), subaccount_id)
        try:  # one lookup, where `get` checks membership and then looks up again
            principal, kept_at = self._entries[key]
        except KeyError:
            return None
        if (
            refresh is not None
            and time.monotonic() - kept_at >= self.seconds * REFRESH_AFTER
            and key not in self._refreshing
        ):
            self._refreshing[key] = asyncio.create_task(self._refresh(key, refresh, self._cleared))
        return principal

    def put(self, plain_key: str, subaccount_id: uuid.UUID | None, principal: "Principal") -> None:
        if self._entries is not None:
            self._entries[(hash_api_key(plain_key), subaccount_id)] = (principal, time.monotonic())

    async def _refresh(
        self, key: Key, refresh: "Callable[[], Awaitable[Principal]]", cleared: int
    ) -> None:
        try:
            principal = await refresh()
        except Exception as error:  # refused or unreachable: the next request finds out itself
            log.debug("refreshing a kept principal failed: %r", error)
            if self._entries is not None:
                self._entries.pop(key, None)
        else:
            if self._entries is not None and self._cleared == cleared:
                self._entries[key] = (principal, time.monotonic())
        finally:
            self._refreshing.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries) if self._entries is not None else 0

    def clear(self) -> None:
        self._cleared += 1
        if self._entries is not None:
            self._entries.clear()


def forget_principals() -> None:
    """Empty every cache of this process: a key was revoked or an account's status changed.
    Called before that change commits, so a request in between may cache the old state
    again, for the TTL at most: the same bound as a change made by another process."""
    for cache in list(_caches):
        cache.clear()


class KeyUseClaims:
    """Which keys this process has just recorded the use of (`last_used_at`, kept to a
    resolution of `resolution_seconds`): the first of many concurrent authentications of a key
    whose recorded use is stale writes it, the others do not. Without this, every one of them
    wrote the key's row, each waiting for the one before (and for the account's data-version
    row behind it): 50 sockets opening at once made 50 writes queued one after another."""

    def __init__(self, resolution_seconds: float) -> None:
        self._claimed: TTLCache[uuid.UUID, bool] = TTLCache(MAX_PRINCIPALS, resolution_seconds)

    def claim(self, key_id: uuid.UUID) -> bool:
        """True for the caller that is to write the key's use now."""
        if key_id in self._claimed:
            return False
        self._claimed[key_id] = True
        return True

    def release(self, key_id: uuid.UUID) -> None:
        """The write failed: the next authentication tries again."""
        self._claimed.pop(key_id, None)
