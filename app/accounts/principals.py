"""Recently authenticated principals, kept a few seconds so that a known key's requests read
no key row; revocation and suspension still bite within those seconds."""

import uuid
import weakref
from typing import TYPE_CHECKING

from cachetools import TTLCache

from app.accounts.keys import hash_api_key

if TYPE_CHECKING:  # the service forgets principals; this module only holds them
    from app.accounts.service import Principal

MAX_PRINCIPALS = 10_000

# Every cache of this process, so that a revocation or suspension made here empties them at
# once (see forget_principals); those made by other processes wait out the TTL.
_caches: "weakref.WeakSet[PrincipalCache]" = weakref.WeakSet()


class PrincipalCache:
    """Who a key (with a subaccount or none) authenticated as, for at most `seconds`.

    Only successes are kept, by the key's hash, in a bounded LRU: a flood of bad keys stores
    nothing, and many good ones evict the least recently used. `seconds` is the bound within
    which a revocation or suspension elsewhere is seen; 0 keeps nothing.
    """

    def __init__(self, seconds: float, maxsize: int = MAX_PRINCIPALS) -> None:
        self._entries: TTLCache[tuple[str, uuid.UUID | None], Principal] | None = (
            TTLCache(maxsize=maxsize, ttl=seconds) if seconds > 0 else None
        )
        _caches.add(self)

    def get(self, plain_key: str | None, subaccount_id: uuid.UUID | None) -> "Principal | None":
        if self._entries is None or not plain_key:
            return None
        try:  # one lookup, where `get` checks membership and then looks up again
            return self._entries[(hash_api_key(plain_key), subaccount_id)]
        except KeyError:
            return None

    def put(self, plain_key: str, subaccount_id: uuid.UUID | None, principal: "Principal") -> None:
        if self._entries is not None:
            self._entries[(hash_api_key(plain_key), subaccount_id)] = principal

    def __len__(self) -> int:
        return len(self._entries) if self._entries is not None else 0

    def clear(self) -> None:
        if self._entries is not None:
            self._entries.clear()


def forget_principals() -> None:
    """Empty every cache of this process: a key was revoked or an account's status changed.
    Called before that change commits, so a request in between may cache the old state
    again, for the TTL at most: the same bound as a change made by another process."""
    for cache in list(_caches):
        cache.clear()
