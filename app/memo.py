"""Bounded memos: values worked out once per key and kept, for hot paths."""

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Memo(dict[K, V], Generic[K, V]):
    """A dict of at most `limit` values, emptied when full rather than evicting one at a time.
    Its keys are often the clients' to choose (hosts, documents, principals), so it needs a
    bound; emptying costs nothing per lookup, where an LRU's bookkeeping (cachetools,
    OrderedDict) would be paid on every hit, and a key still in use is worked out again once."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key: K, value: V) -> V:
        """Keep `value` for `key` (emptying the memo first when it is full); `value`."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
